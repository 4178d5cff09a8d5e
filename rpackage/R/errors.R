#' Conditions signalled by hfbridge
#'
#' Every failure arrives as a condition with the classes
#' `c("hfbridge_error_<code>", "hfbridge_error", "error", "condition")` and fields for what it is
#' about (`repo_id`, `filename`, `revision`, `path`, ...). The codes are `repo_not_found`,
#' `revision_not_found`, `entry_not_found`, `gated`, `auth`, `offline_not_cached`, `network`,
#' `invalid_file`, `invalid_argument`, `python_environment`, `unsupported`, `pickle_weights` (a
#' model repository with only pickle weights, refused unless `allow_pickle = TRUE`),
#' `repo_exists` and `ref_exists` (creating a repository, branch or tag that exists, without
#' `exist_ok = TRUE`), `stale_parent` (a commit whose parent is no longer the head of its
#' branch), and `python` for an unexpected Python failure (with the field `python_type`). No
#' message ever contains a token.
#'
#' @name hfbridge_errors
#' @examples
#' res <- tryCatch(
#'   hub_download("", "config.json"),
#'   hfbridge_error_invalid_argument = function(e) conditionMessage(e)
#' )
#' res
NULL

hfbridge_abort <- function(code, message, ..., call = user_call()) {
  fields <- list(...)
  fields <- fields[!vapply(fields, is.null, logical(1))]
  cond <- structure(
    c(list(message = redact(message), call = call), fields),
    class = c(paste0("hfbridge_error_", code), "hfbridge_error", "error", "condition")
  )
  stop(cond)
}

# The call the user made, for a condition's `call`: the outermost frame that runs one of
# hfbridge's functions (an export, a method of a handle, a function a verb returned), so every
# error names the verb the user called, however deep it was raised, without each check passing
# rlang's `call = caller_env()` along. Only the function is kept, never the arguments: a token
# given as an argument must not reach a printed error. NULL when no hfbridge frame is found.
user_call <- function() {
  ns <- topenv(environment(user_call))
  for (i in seq_len(sys.nframe())) {
    if (identical(topenv(environment(sys.function(i))), ns)) {
      fn <- sys.call(i)[[1L]]
      named <- is.symbol(fn) || (is.call(fn) && as.character(fn[[1L]]) %in% c("$", "::", ":::"))
      return(if (named) as.call(list(fn)) else NULL)
    }
  }
  NULL
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

# Calls a Python function for R through pybridge.errors.call(), so that every Python failure
# leaves as a pybridge error with a code and fields, and maps it to a classed condition. The
# last Python error is cleared first: a failure in R's conversion of the result then finds
# none, and is never described with an earlier call's message.
call_python <- function(f, ...) {
  reticulate::py_last_error(NULL)
  tryCatch(py_function("errors", "call")(f, ...), error = rethrow_python_error)
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
