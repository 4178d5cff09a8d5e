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
  if (length(not_utf8(x))) {
    hfbridge_abort("invalid_argument", sprintf("`%s` is not valid UTF-8: %s", arg, to_utf8_advice),
                   argument = arg)
  }
  enc2utf8(x)
}

to_utf8_advice <- "convert it to UTF-8 first, e.g. iconv(x, from = \"latin1\", to = \"UTF-8\")."

# Positions of the strings of `x` that are bytes, or meant as UTF-8 but not valid UTF-8 (which
# enc2utf8() would turn into "<e9>" escapes).
not_utf8 <- function(x) {
  if (!is.character(x)) return(integer())
  encoding <- Encoding(x)
  utf8 <- encoding == "UTF-8" | (encoding == "unknown" & isTRUE(l10n_info()[["UTF-8"]]))
  which(encoding == "bytes" | (utf8 & !is.na(x) & !validUTF8(x)))
}

check_seconds <- function(x, arg) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x <= 0) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must be a positive number of seconds.", arg),
                   argument = arg)
  }
  x
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
  if (!is.null(x) && !is.vector(x) && !is.factor(x) && !is.array(x)) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must be a value or a list of values, not %s.",
                                               arg, describe_value(x)), argument = arg)
  }
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
  if (length(not_utf8(x))) return("text that is not valid UTF-8")
  if (nchar(x) > 60L) return(sprintf("a string of %d characters", nchar(x)))
  sprintf("\"%s\"", x)
}

# A UTF-8 character vector without NA; lists of strings and factors are accepted.
check_texts <- function(x, arg) {
  if (is.factor(x)) x <- as.character(x)
  if (is.list(x) && all(vapply(x, function(v) is.character(v) && length(v) == 1L, logical(1)))) {
    x <- as.character(unlist(x, use.names = FALSE))
  }
  if (!is.character(x)) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must be a character vector, not %s.", arg,
                                               class(x)[1L]), argument = arg)
  }
  x <- check_text_values(x, sprintf("`%s`", arg), arg, "position")
  names(x) <- NULL
  x
}

# The texts `x` as UTF-8, refusing NA (unless na_ok), strings marked as bytes and invalid UTF-8.
# `where` starts the message ("`texts`"), `unit` names what is counted ("position", "row"): the
# error's field is its plural. `...`: more fields of the error.
check_text_values <- function(x, where, arg, unit, na_ok = FALSE, ...) {
  refuse <- function(found, problem, advice) {
    fields <- c(stats::setNames(list(arg, found), c("argument", paste0(unit, "s"))), list(...))
    message <- sprintf("%s %s at %s%s %s: %s", where, problem, unit,
                       if (length(found) > 1L) "s" else "", format_positions(found), advice)
    do.call(hfbridge_abort, c(list("invalid_argument", message), fields))
  }
  na <- if (na_ok) integer() else which(is.na(x))
  if (length(na)) {
    refuse(na, "has NA", sprintf("drop %s or replace them with \"\".",
                                 if (unit == "row") "those rows" else "them"))
  }
  bad <- not_utf8(x)
  if (length(bad)) refuse(bad, "is not valid UTF-8", to_utf8_advice)
  enc2utf8(x)
}

format_positions <- function(positions) {
  shown <- paste(utils::head(positions, 10L), collapse = ", ")
  if (length(positions) > 10L) shown <- sprintf("%s and %d more", shown, length(positions) - 10L)
  shown
}

check_choice <- function(x, allowed, arg) {
  if (is.character(x) && length(x) > 1L && identical(x, allowed)) return(allowed[1L])
  if (!is.character(x) || length(x) != 1L || !x %in% allowed) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must be one of %s.", arg,
                                               paste0("\"", allowed, "\"", collapse = ", ")),
                   argument = arg)
  }
  x
}

check_count <- function(x, arg, minimum = 0L) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x != round(x) || x < minimum || x >= 2^31) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must be a whole number from %d to %d, not %s.",
                                               arg, minimum, .Machine$integer.max,
                                               describe_value(x)), argument = arg)
  }
  as.integer(x)
}

# A random seed: a whole number from 0 to 2^32 - 1 (numpy's range); an integer where R's
# integers reach, a double above.
check_seed <- function(x, arg = "seed") {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x != round(x) || x < 0 || x > 2^32 - 1) {
    hfbridge_abort("invalid_argument", sprintf(
      "`%s` must be a whole number from 0 to 4294967295 (2^32 - 1), not %s.", arg,
      describe_value(x)), argument = arg)
  }
  if (x <= .Machine$integer.max) as.integer(x) else as.numeric(x)
}

# A most-rows limit: a whole number >= 0, or Inf for none. NULL for no limit: Inf, or a whole
# number beyond R's integer range (no data frame holds that many rows).
check_limit <- function(x, arg) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x < 0 ||
      (is.finite(x) && x != floor(x))) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must be a whole number >= 0 or Inf, not %s.",
                                               arg, describe_value(x)), argument = arg)
  }
  if (x > .Machine$integer.max) NULL else as.integer(x)
}

check_optional_count <- function(x, arg) {
  if (is.null(x)) NULL else check_count(x, arg, 1L)
}
