# Package state. Nothing here starts Python: modules are imported on first use.

#' @useDynLib hfbridge, .registration = TRUE
NULL

.hfb <- new.env(parent = emptyenv())
.hfb$modules <- list()
.hfb$functions <- new.env(parent = emptyenv())

.onLoad <- function(libname, pkgname) {
  invisible(NULL)
}
