# Argument checks shared by every verb family. They run in R, before Python is started, and
# fail with hfbridge_error_invalid_argument naming the argument and what it got.

# A single string, not empty, and not only spaces unless blank_ok (a pad token may be " ").
check_string <- function(x, arg, example = NULL, blank_ok = FALSE) {
  if (!is.character(x) || length(x) != 1L || is.na(x) || !nzchar(x) ||
      (!blank_ok && !grepl("[^[:space:]]", x))) {
    such_as <- if (is.null(example)) "" else paste(" such as", example)
    hfbridge_abort("invalid_argument", sprintf("`%s` must be one non-empty string%s, not %s.",
                                               arg, such_as, describe_value(x)), argument = arg)
  }
  enc2utf8(x)
}

check_flag <- function(x, arg) {
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must be TRUE or FALSE, not %s.", arg,
                                               describe_value(x)), argument = arg)
  }
  x
}

# check_flags(quiet = quiet, force = force): every named argument is TRUE or FALSE.
check_flags <- function(...) {
  flags <- list(...)
  for (name in names(flags)) check_flag(flags[[name]], name)
  invisible(TRUE)
}

# reticulate would pass an NA on as True or "NA": refuse it anywhere inside x (nested lists too).
check_no_na <- function(x, arg) {
  if (anyNA(unlist(x, use.names = FALSE))) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must not hold NA.", arg), argument = arg)
  }
  invisible(x)
}

# The Hub's repository types. pybridge._args holds the same list for Python's own checks; R
# checks first so that a typo fails before Python starts.
repo_types <- c("model", "dataset", "space")

check_repo_type <- function(repo_type, ...) {
  if (!repo_type %in% repo_types) {
    hfbridge_abort("invalid_argument", sprintf("`repo_type` must be one of %s, not \"%s\".",
                                               paste0("\"", repo_types, "\"", collapse = ", "),
                                               repo_type), argument = "repo_type", ...)
  }
  repo_type
}

# A bad value as an error message shows it: NULL, NA, "text", the numeric 3, a list, ...
describe_value <- function(x) {
  if (is.null(x)) return("NULL")
  if (!is.atomic(x)) return(paste("a", class(x)[1]))
  if (length(x) != 1) return(sprintf("a %s vector of length %d", class(x)[1], length(x)))
  if (is.na(x)) return("NA")
  if (!is.character(x)) return(sprintf("the %s %s", class(x)[1], format(x)))
  sprintf("\"%s\"", x)
}
