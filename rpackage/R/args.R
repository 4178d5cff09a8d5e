# Argument checks shared by every verb family. They run in R, before Python is started, and
# fail with hfbridge_error_invalid_argument naming the argument.

check_string <- function(x, arg) {
  if (!is.character(x) || length(x) != 1L || is.na(x) || !nzchar(x)) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must be a single non-empty string.", arg),
                   argument = arg)
  }
  enc2utf8(x)
}

check_flag <- function(x, arg) {
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must be TRUE or FALSE.", arg), argument = arg)
  }
  x
}
