#' Conditions signalled by hfbridge
#'
#' Every failure arrives as a condition with the classes
#' `c("hfbridge_error_<code>", "hfbridge_error", "error", "condition")` and fields for what it is
#' about (`repo_id`, `filename`, `revision`, `path`, ...). The codes are `repo_not_found`,
#' `revision_not_found`, `entry_not_found`, `gated`, `auth`, `offline_not_cached`, `network` (a
#' failure through a proxy names it in the field `proxy`, never with its password), `tls` (a
#' server certificate the CAs in use cannot verify: set `SSL_CERT_FILE`), `invalid_file`,
#' `invalid_argument`, `python_environment`, `system_dependency` (a program a task needs is
#' missing, named in the field `program`: ffmpeg for audio), `unsupported`, `pickle_weights` (a
#' model repository
#' with only pickle weights, refused unless `allow_pickle = TRUE`), `repo_exists` and
#' `ref_exists` (creating a repository, branch or tag that exists, without `exist_ok = TRUE`),
#' `stale_parent` (a commit whose parent is no longer the head of its branch), `memory` (a
#' result whose size is known beforehand and that cannot fit in memory, refused before it is
#' allocated: a padded token matrix, a tensor read into R, images, a text so long that the
#' model's attention cannot fit; the fields `bytes`, the memory it needs, and `limit`, the memory
#' free or allowed),
#' `no_chat_template` (a conversation given to a tokenizer or model whose folder has no chat
#' template), `storage` (files that cannot be written: a full disk, a read-only file system, or
#' a cache folder, `HF_HOME`, that cannot be made; fields `path` and `reason`), and `python` for
#' an unexpected Python failure (with the field `python_type`). No message ever contains a
#' token.
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
  fields <- lapply(fields[!vapply(fields, is.null, logical(1))], printable)
  cond <- structure(
    c(list(message = redact(printable(message)), call = call), fields),
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
      return(if (named) as.call(list(without_arguments(fn))) else NULL)
    }
  }
  NULL
}

# `hf_chat(token = "hf_...")$chat` becomes `hf_chat()$chat`: the arguments of a call that made the
# object may hold a token, and a condition's call is printed and serialized with it.
without_arguments <- function(fn) {
  if (!is.call(fn)) return(fn)
  head <- fn[[1L]]
  if (is.symbol(head) && as.character(head) %in% c("$", "::", ":::", "@")) {
    return(as.call(list(head, without_arguments(fn[[2L]]), fn[[3L]])))
  }
  as.call(list(without_arguments(head)))
}

hfbridge_warn <- function(code, message, ...) {
  cond <- structure(
    c(list(message = redact(printable(message)), call = NULL), lapply(list(...), printable)),
    class = c(paste0("hfbridge_warning_", code), "hfbridge_warning", "warning", "condition")
  )
  warning(cond)
}

# Text that R can print and take substrings of: bytes that are not UTF-8 (a repo id given as
# latin1 bytes, say) shown as "<ff>".
printable <- function(x) {
  if (!is.character(x) || all(validUTF8(x))) return(x)
  iconv(x, "UTF-8", "UTF-8", sub = "byte")
}

# Belt and braces: pybridge already redacts, but an unexpected Python error might not.
redact <- function(text) {
  for (name in c("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")) {
    secret <- Sys.getenv(name)
    # a secret that is not UTF-8 never reached Python (hf_env() refuses it), nor a message
    if (validUTF8(secret) && nchar(secret) >= 4) text <- gsub(secret, "***", text, fixed = TRUE)
  }
  gsub("hf_[A-Za-z0-9]{8,}", "hf_***", text)
}
