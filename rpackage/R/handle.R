# The one base of every R object that holds a live Python object (a tokenizer, a safetensors
# handle, a dataset chunk reader): it keeps the object, refuses it with a classed error once it
# is gone (closed, or from an R session that has ended), closes it, and prints it.

# Subclasses call super$initialize(py), use private$live() for the object, and fill in:
# `noun` (for messages), `remedy` (what to do when the session has ended), `fields()` (fields of
# those errors) and `describe(...)` (the lines format() and print() show; private$status() tells
# "(closed)"). R6 resolves `inherit = hfbridge_handle` when an object is made, so the subclasses'
# files may sort before this one.
hfbridge_handle <- R6::R6Class(
  classname = "hfbridge_handle",
  cloneable = FALSE,
  public = list(
    initialize = function(py) {
      private$py <- py
    },
    is_closed = function() private$closed,
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
    format = function(...) private$describe(...),
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
