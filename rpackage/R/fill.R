# The fill fast path, with pybridge/fill.py. R allocates each result vector without writing it
# (src/alloc.c) and Python converts the tensor straight into it through a zero-copy view, in row
# blocks on every core: the page faults of the fresh memory and the transpose then run in
# parallel, instead of reticulate's cast, copy and transpose on one core.

# Whole double and integer tensors: R allocates them all, one Python call fills them all.
st_fill_many <- function(handle, names, rows, opts) {
  table <- handle$table
  out <- lapply(rows, function(i) {
    st_alloc(table$r_types[[i]], st_dims(table$shapes[[i]], opts))
  })
  lossy <- as.character(unlist(st_method(handle$py, "fill_many", as.list(names), unname(out),
                                         opts$int64, opts$reversed)))
  scalar <- lengths(table$shapes[rows]) == 0
  out[scalar] <- lapply(out[scalar], as.vector)
  for (name in lossy) st_warn_lossy(name, table$dtypes[[match(name, table$names)]])
  out
}

# Grows R's heap once for everything about to be read. Otherwise R's collector, which grows the
# heap by a few percent at a time, runs dozens of full collections while a model loads (2 s of
# 4 for GPT-2). readBin() of nothing allocates the vector without touching its memory and drops
# it; the next collection frees it, and the heap keeps its new size.
st_reserve <- function(table, rows) {
  width <- c(double = 8, integer = 4, logical = 4, complex = 16)[table$r_types[rows]]
  bytes <- sum(width * vapply(table$shapes[rows], function(s) prod(as.numeric(s)), 1))
  if (bytes < 64e6) return(invisible(NULL))
  tryCatch(readBin(raw(0), "double", n = ceiling(1.25 * bytes / 8)), error = function(e) NULL)
  invisible(NULL)
}

# A fresh R vector for Python to fill, left unwritten (src/alloc.c says why). Python writes
# every element before R sees it; if the fill fails, the vector is dropped.
st_alloc <- function(r_type, shape) {
  x <- .Call(hfb_alloc_unfilled, r_type, as.numeric(prod(shape)))
  dim(x) <- if (length(shape)) shape else 1L
  x
}

# Does Python's write into the R vector reach R (reticulate passes R arrays zero-copy)?
st_fill_works <- function() {
  if (is.null(.hfb$st_fill)) {
    x <- numeric(3L)
    dim(x) <- 3L
    y <- numeric(2L)
    dim(y) <- 2L
    listed <- list(y)
    ok <- tryCatch({
      py_call("fill", "probe_fill", x, listed)
      identical(as.vector(x), c(1, 2, 3)) && identical(as.vector(listed[[1]]), c(1, 2))
    }, hfbridge_error = function(e) FALSE)
    .hfb$st_fill <- ok
  }
  .hfb$st_fill
}
