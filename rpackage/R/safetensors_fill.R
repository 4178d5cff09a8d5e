# The fill fast path, with pybridge/fill.py. R allocates each result vector without writing it
# (src/alloc.c; large ones outside R's heap) and Python converts the tensor straight into it
# through a zero-copy view, in row blocks on every core: the page faults of the fresh memory and
# the transpose then run in parallel, instead of reticulate's cast, copy and transpose on one.

# Whole double and integer tensors: R allocates them all, one Python call fills them all.
st_fill_many <- function(handle, names, rows, opts) {
  table <- handle$table
  out <- lapply(rows, function(i) {
    st_alloc(table$r_types[[i]], st_dims(table$shapes[[i]], opts))
  })
  lossy <- as.character(unlist(st_method(handle$py, "fill_many", as.list(names), unname(out),
                                         opts$int64, opts$reversed)))
  .Call(hfb_release_spare)  # the blocks this load did not reuse
  scalar <- lengths(table$shapes[rows]) == 0
  out[scalar] <- lapply(out[scalar], as.vector)
  for (name in lossy) st_warn_lossy(name, table$dtypes[[match(name, table$names)]])
  out
}

# Grows R's heap once for the results about to be read into it (the large filled ones live
# outside it). Otherwise R's collector, which grows the heap by a few percent at a time, runs
# dozens of full collections while a model loads (2 s of 4 for GPT-2). readBin() of nothing
# allocates the vector without touching its memory and drops it; the next collection frees it,
# and the heap keeps its new size.
st_reserve <- function(table, rows, filled) {
  width <- c(double = 8, integer = 4, logical = 4, complex = 16)[table$r_types[rows]]
  sizes <- width * vapply(table$shapes[rows], function(s) prod(as.numeric(s)), 1)
  bytes <- sum(sizes[!(filled & sizes >= .Call(hfb_mapped_min))])
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

# Does Python's write into the R vector reach R (reticulate passes R arrays zero-copy), for
# vectors in R's heap and outside it, alone and in a list?
st_fill_works <- function() {
  if (is.null(.hfb$st_fill)) {
    large <- min(.Call(hfb_mapped_min) / 8, 2^20)
    written <- function(v) {
      n <- length(v)
      identical(as.vector(v[c(1, n)]), c(1, n)) && sum(v) == n * (n + 1) / 2
    }
    ok <- tryCatch({
      x <- st_alloc("double", 3L)
      y <- st_alloc("double", large)
      z <- st_alloc("double", large)
      listed <- list(z, st_alloc("double", 2L))
      py_call("fill", "probe_fill", x, list(y))
      py_call("fill", "probe_fill", listed[[1]], listed[2])
      written(x) && written(y) && written(listed[[1]]) && written(listed[[2]])
    }, hfbridge_error = function(e) FALSE)
    .hfb$st_fill <- ok
  }
  .hfb$st_fill
}
