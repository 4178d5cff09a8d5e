# The one base of every R object that holds a live Python object (a tokenizer, a safetensors
# handle, a dataset chunk reader): it keeps the object, refuses it with a classed error once it
# is gone (closed, or from an R session that has ended), closes it, and prints it.

# Subclasses call super$initialize(py), use private$live() for the object, and fill in:
# `noun` (for messages), `remedy` (what to do when the session has ended), `fields()` (fields of
# those errors) and `describe(...)` (the lines format() and print() show; private$status() tells
# "(closed)"). R6 resolves `inherit = hfbridge_handle` when an object is made, so the subclasses'
# files may sort before this one.

#' The methods every hfbridge handle has
#'
#' A tokenizer ([tokenizer]), a safetensors handle ([safe_open()]) and a chat ([hf_chat()]) hold
#' a live Python object. They share these methods. A closed handle, or one saved with
#' [saveRDS()] and read in another R session, signals `hfbridge_error_invalid_argument` when it
#' is used, saying why and what to do.
#'
#' @keywords internal
#' @examplesIf hfbridge:::examples_ready()
#' tok <- tokenizer_from_pretrained("gpt2")
#' tok$is_closed()
#' tok$close()
#' tok
#' try(tok$encode("Hello"))
hfbridge_handle <- R6::R6Class(
  classname = "hfbridge_handle",
  cloneable = FALSE,
  public = list(
    #' @description Wraps a Python object; the subclasses' constructors call it.
    #' @param py The Python object.
    initialize = function(py) {
      private$py <- py
    },
    #' @description Whether the handle was closed.
    #' @return `TRUE` or `FALSE`.
    is_closed = function() private$closed,
    #' @description Lets the Python object go (its `close()` runs, if it has one). Using the
    #'   handle afterwards is an error; closing it again does nothing.
    #' @return `NULL`, invisibly.
    close = function() {
      if (!private$closed) {
        py <- private$py
        private$closed <- TRUE
        private$py <- NULL
        if (!reticulate::py_is_null_xptr(py) && reticulate::py_has_attr(py, "close")) {
          call_python(py[["close"]])
        }
      }
      invisible(NULL)
    },
    #' @description The lines `print()` shows.
    #' @param ... Passed on by `print()`.
    #' @return A character vector.
    format = function(...) private$describe(...),
    #' @description Prints the handle: its class, what it holds, and whether it is closed.
    #' @param ... Passed to `format()`.
    #' @return The handle, invisibly.
    print = function(...) {
      cat(self$format(...), sep = "\n")
      invisible(self)
    }
  ),
  private = list(
    py = NULL,
    closed = FALSE,
    noun = "handle",
    remedy = "Make it again in this session.",
    fields = function() list(),
    subject = function() sprintf("This %s", private$noun),
    describe = function(...) sprintf("<%s>%s", class(self)[[1L]], private$status()),
    usable = function() !private$closed && !reticulate::py_is_null_xptr(private$py),
    status = function() {
      if (private$closed) " (closed)" else if (!private$usable()) " (from an ended R session)" else ""
    },
    # The Python object, or a classed error saying why it is gone and what to do.
    live = function() {
      if (private$closed) {
        message <- sprintf("%s is closed.", private$subject())
      } else if (reticulate::py_is_null_xptr(private$py)) {
        message <- sprintf(paste(
          "%s belongs to an R session that has ended (it was saved with saveRDS() or similar).",
          "%s"), private$subject(), private$remedy)
      } else {
        return(private$py)
      }
      do.call(hfbridge_abort, c(list("invalid_argument", message), private$fields()))
    }
  )
)
