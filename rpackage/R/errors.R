#' Conditions signalled by hfbridge
#'
#' Every failure arrives as a condition with the classes
#' `c("hfbridge_error_<code>", "hfbridge_error", "error", "condition")` and fields for what it is
#' about (`repo_id`, `filename`, `revision`, `path`, ...). The codes are `repo_not_found`,
#' `revision_not_found`, `entry_not_found`, `gated`, `auth`, `offline_not_cached`, `network`,
#' `invalid_file`, `invalid_argument`, `python_environment`, `unsupported`, `pickle_weights` (a model
#' repository with only pickle weights, refused unless `allow_pickle = TRUE`), and `python` for an
#' unexpected Python failure. No message ever contains a token.
#'
#' @name hfbridge_errors
#' @examples
#' res <- tryCatch(
#'   hub_download("", "config.json"),
#'   hfbridge_error_invalid_argument = function(e) conditionMessage(e)
#' )
#' res
NULL

hfbridge_abort <- function(code, message, ..., call = NULL) {
  fields <- list(...)
  fields <- fields[!vapply(fields, is.null, logical(1))]
  cond <- structure(
    c(list(message = redact(message), call = call), fields),
    class = c(paste0("hfbridge_error_", code), "hfbridge_error", "error", "condition")
  )
  stop(cond)
}

hfbridge_warn <- function(code, message, ...) {
  cond <- structure(
    c(list(message = message, call = NULL), list(...)),
    class = c(paste0("hfbridge_warning_", code), "hfbridge_warning", "warning", "condition")
  )
  warning(cond)
}

# Belt and braces: pybridge already redacts, but an unexpected Python error might not.
redact <- function(text) {
  for (name in c("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")) {
    secret <- Sys.getenv(name)
    if (nchar(secret) >= 4) text <- gsub(secret, "***", text, fixed = TRUE)
  }
  gsub("hf_[A-Za-z0-9]{8,}", "hf_***", text)
}

# Turns the error of a failed Python call into a classed R condition.
rethrow_python_error <- function(e) {
  if (inherits(e, "hfbridge_error")) stop(e)
  py_err <- reticulate::py_last_error()
  info <- tryCatch(pybridge_module("errors")$last_error_info(), error = function(e2) NULL)
  if (!is.null(info) && !is.null(py_err) && identical(info$type, py_err$type)) {
    do.call(hfbridge_abort, c(list(info$code, info$message), info$fields))
  }
  type <- if (is.null(py_err)) "error" else py_err$type
  msg <- if (is.null(py_err)) conditionMessage(e) else py_err$value
  hfbridge_abort("python", sprintf("Python raised %s: %s", type, msg), python_type = type)
}

# Calls pybridge.<module>.<fun>(...) and maps any failure to a classed condition.
py_call <- function(module, fun, ...) {
  f <- pybridge_module(module)[[fun]]
  tryCatch(f(...), error = rethrow_python_error)
}
