# The bridge from R to pybridge: every call goes through pybridge.errors.call(), and every
# Python failure comes back as a classed condition (hfbridge_abort(), errors.R). Python itself is
# found and started by python.R.

# Calls a Python function for R through pybridge.errors.call(), so that every Python failure
# leaves as a pybridge error with a code and fields, and maps it to a classed condition. The
# last Python error is cleared first: a failure in R's conversion of the result then finds
# none, and is never described with an earlier call's message.
call_python <- function(f, ...) {
  check_python_args(list(...))
  reticulate::py_last_error(NULL)
  tryCatch(py_function("errors", "call")(f, ...), error = rethrow_python_error)
}

# The net under the verbs' own checks, on what reticulate would get wrong:
# - text that is not UTF-8 (bytes, or a string marked UTF-8 that is not, as Sys.getenv() can
#   return) makes reticulate 1.28 crash R as it converts it;
# - an R function, environment or expression cannot be sent, and reticulate's message then
#   blames the result.
# No copy is made: only the strings, the names of the lists given and the elements of short
# lists are looked at (about 40 us for a hub call's arguments, on a busy machine).
check_python_args <- function(args) {
  text <- vapply(args, is.character, logical(1))
  if (any(text) && length(not_utf8(unlist(args[text], use.names = FALSE)))) {
    not_utf8_argument(names(args)[text][which(vapply(args[text], bad_text, logical(1)))[1]])
  }
  for (i in which(!text & !vapply(args, is.atomic, logical(1)))) {
    arg <- args[[i]]
    odd <- if (is.list(arg) && length(arg) < 1000L) Find(not_a_value, arg)
    if (not_a_value(arg) || !is.null(odd)) not_a_value_argument(names(args)[i], odd %||% arg)
    if (is.list(arg) && length(arg) && (bad_text(names(arg)) || list_bad_text(arg))) {
      not_utf8_argument(names(args)[i])
    }
  }
  invisible()
}

bad_text <- function(x) length(not_utf8(x)) > 0L

# A list of strings (an environment's variables) is looked at in one go; others leaf by leaf,
# never flattened, since they may hold large arrays.
list_bad_text <- function(x) {
  if (length(x) < 1000L && all(vapply(x, is.character, logical(1)))) {
    return(bad_text(unlist(x, use.names = FALSE)))
  }
  any(rapply(x, bad_text, classes = "character", how = "unlist"))
}

# An R function, environment or expression, which reticulate cannot send (its message then
# blamed the result); Python objects are environments too, and pass.
not_a_value <- function(x) {
  is.function(x) || is.language(x) ||
    (is.environment(x) && !inherits(x, "python.builtin.object"))
}

not_a_value_argument <- function(name, value) {
  named <- !is.null(name) && nzchar(name)
  hfbridge_abort("invalid_argument", sprintf(
    "The %s holds %s, where a value (text, numbers, a list) belongs.",
    if (named) sprintf("argument `%s`", name) else "input", describe_value(value)),
    argument = if (named) name)
}

not_utf8_argument <- function(name) {
  named <- !is.null(name) && nzchar(name)
  hfbridge_abort("invalid_argument", sprintf(
    "The %s holds text that is not valid UTF-8: %s",
    if (named) sprintf("argument `%s`", name) else "input", to_utf8_advice),
    argument = if (named) name)
}

# Calls pybridge.<module>.<fun>(...) and maps any failure to a classed condition.
py_call <- function(module, fun, ...) call_python(py_function(module, fun), ...)

# pybridge.<module>.<fun>, looked up once per session: an attribute lookup through reticulate
# costs about 0.1 ms, as much as the rest of a cached hub download.
py_function <- function(module, fun) {
  key <- paste0(module, ".", fun)
  f <- .hfb$functions[[key]]
  if (is.null(f)) {
    f <- pybridge_module(module)[[fun]]
    .hfb$functions[[key]] <- f
  }
  f
}

rethrow_python_error <- function(e) {
  if (inherits(e, "hfbridge_error")) stop(e)
  py_err <- reticulate::py_last_error()
  if (is.null(py_err)) {
    hfbridge_abort("python", paste("R could not take the result of a Python call:",
                                   conditionMessage(e)))
  }
  exc <- attr(py_err, "exception")
  code <- python_field(exc, "code")
  if (is.null(code)) {  # not pybridge's (an interrupt, or an error before the call started)
    hfbridge_abort("python", sprintf("Python raised %s: %s", py_err$type, py_err$value),
                   python_type = py_err$type)
  }
  do.call(hfbridge_abort, c(list(code, python_field(exc, "message")),
                            python_field(exc, "fields")))
}

python_field <- function(exc, name) {
  if (!reticulate::py_has_attr(exc, name)) return(NULL)
  reticulate::py_to_r(reticulate::py_get_attr(exc, name))
}
