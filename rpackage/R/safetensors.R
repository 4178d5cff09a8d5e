# Safetensors verbs: R checks the arguments, pybridge.safetensors checks and maps the files (with
# the Hugging Face safetensors library), and R allocates each result array for Python to fill.

#' Read a safetensors file into R arrays
#'
#' Reads the tensors of a `.safetensors` file into a named list of plain R arrays. `dim()` of
#' each array equals the shape in Python, and `x[i, j, ...]` equals Python's
#' `t[i - 1, j - 1, ...]`. The names come in file order, as Python's
#' `safetensors.numpy.load_file()` gives them. The header's `__metadata__` is kept in
#' `attr(, "metadata")` as a named character vector (`NULL` when the file has none).
#'
#' @section Types:
#' | safetensors dtype | R type |
#' |---|---|
#' | `F64`, `F32`, `F16`, `BF16` | double |
#' | `F8_E4M3`, `F8_E5M2`, `F8_E4M3FNUZ`, `F8_E5M2FNUZ`, `F8_E8M0` | double |
#' | `I32`, `I16`, `I8`, `U16`, `U8` | integer |
#' | `U32` | double (exact) |
#' | `I64`, `U64` | double; beyond 2^53 in magnitude a value is rounded, with a warning of class `hfbridge_warning_precision_loss` (`int64 = "error"` refuses instead) |
#' | `BOOL` | logical |
#' | `C64` | complex |
#' | `F4`, `F6_E2M3`, `F6_E3M2` | not read: `hfbridge_error_unsupported` |
#'
#' A 0-d tensor becomes a length-1 vector without `dim`; a 1-d tensor a 1-d array; an empty
#' tensor keeps its shape (for example `dim()` of `c(0, 3)`).
#'
#' @section Errors:
#' A file that is missing, truncated, not safetensors at all (such as a pickle `.bin`), or whose
#' header is broken (a length beyond the file, invalid JSON, overlapping or out-of-range offsets,
#' an unknown dtype) gives an error of class `hfbridge_error_invalid_file` with the field `path`.
#' The file is checked by Python's safetensors library and by hfbridge before any byte is read.
#'
#' @section Speed and memory:
#' R allocates each result without writing it, and Python writes the converted values straight
#' into it, in one pass over the data shared between the CPU's cores (reticulate's own
#' conversion makes two copies and a transpose on one core); R's heap is grown once for the whole
#' load instead of by many garbage collections. Peak memory is about the size of the result plus
#' the file's pages in the operating system's cache. The transpose from the file's row-major
#' order is most of the remaining work: `layout = "reversed"` skips it.
#'
#' @param path The path of a `.safetensors` file.
#' @param tensors `NULL` for every tensor, or the names of the tensors to read.
#' @param ... Must be empty; it keeps the arguments after it named.
#' @param int64 What to do when an `I64` or `U64` value is beyond 2^53 in magnitude, which a
#'   double cannot hold exactly: `"double"` rounds it and warns, `"error"` refuses.
#' @param layout `"python"` (the default): `dim()` is the Python shape and `x[i, j]` is
#'   `t[i - 1, j - 1]`. `"reversed"`: `dim()` is the reversed shape and `x[j, i]` is
#'   `t[i - 1, j - 1]` (`aperm(x)` gives the default layout). It keeps the row-major order of the
#'   file, so no transpose is needed: faster for large matrices (see the bench), for code that
#'   wants the transpose anyway.
#' @param framework Accepted for compatibility with the safetensors R package: `"torch"`,
#'   `"pt"`, `"r"` or `"numpy"`. The result is always plain R arrays.
#' @param device Only `"cpu"`.
#' @return A named list of arrays, with `attr(, "metadata")`.
#' @seealso [safe_open()] to read tensors lazily, [safe_load_model()] for a model folder or repo,
#'   [safe_save_file()] to write.
#' @family safetensors
#' @export
#' @examples
#' \dontrun{
#' path <- hub_download(repo_id = "gpt2", filename = "model.safetensors")
#' weights <- safe_load_file(path)
#' names(weights)[1:5]
#' dim(weights[["wte.weight"]])
#' attr(weights, "metadata")
#' }
safe_load_file <- function(path, tensors = NULL, ..., int64 = c("double", "error"),
                           layout = c("python", "reversed"), framework = "torch",
                           device = "cpu") {
  st_check_dots(...)
  st_check_framework(framework, device)
  check_string(path, "path")
  opts <- st_read_options(int64, layout)
  st_check_names(tensors)
  handle <- st_handle(py_call("safetensors", "open_file", path.expand(path)), path)
  on.exit(handle$close())
  st_read_all(handle, tensors, opts)
}

#' Open a safetensors file lazily
#'
#' Returns a handle on a memory-mapped safetensors file: nothing but the header is read until a
#' tensor is asked for, and reading one tensor does not read the others. Tensors come back as in
#' [safe_load_file()] (same types, same `dim()`, same indexing).
#'
#' The handle is an environment of class `hfbridge_safetensors` with
#' * `$keys()`: the tensor names, sorted as Python's `safe_open(...).keys()` sorts them;
#' * `$get_tensor(name, int64 = "double", layout = "python")`: one tensor as an R array;
#' * `$get_slice(name, ..., drop = FALSE)`: part of one tensor, one index per dimension, R style
#'   (positive positions or a logical vector; `NULL` or an empty argument for all). Only the
#'   pages holding the selected values are read. `h$get_slice("wte.weight", 1:10, )` gives the
#'   first 10 rows;
#' * `$shape(name)`, `$dtype(name)`: the shape (an integer vector) and the safetensors dtype;
#' * `$metadata`: the header's `__metadata__` (a named character vector or `NULL`);
#' * `$names`, `$path`: the tensor names in file order, and the file;
#' * `$close()`: unmaps the file. A handle also closes when it is garbage collected.
#'
#' Printing the handle lists every tensor with its shape, dtype and size in the file.
#' The file must not be truncated or rewritten in place while it is open
#' ([safe_save_file()] replaces files atomically, which is safe).
#'
#' @inheritParams safe_load_file
#' @return A handle of class `hfbridge_safetensors`.
#' @family safetensors
#' @export
#' @examples
#' \dontrun{
#' h <- safe_open(hub_download("gpt2", "model.safetensors"))
#' h
#' h$keys()
#' h$shape("wte.weight")
#' first_rows <- h$get_slice("wte.weight", 1:10, )
#' h$close()
#' }
safe_open <- function(path, ..., framework = "torch", device = "cpu") {
  st_check_dots(...)
  st_check_framework(framework, device)
  check_string(path, "path")
  st_handle(py_call("safetensors", "open_file", path.expand(path)), path)
}

#' Read the weights of a model: one file or shards, from a folder or the Hub
#'
#' Reads `model.safetensors`, or every shard listed by `model.safetensors.index.json`, of a
#' local folder or of a Hub repository (downloading only `*.safetensors` and `*.json` files into
#' the Hugging Face cache), and returns one named list over all the shards, or with
#' `lazy = TRUE` one [safe_open()] handle over all of them. A path to a single `.safetensors`
#' file or to an index file works too. For shards, `attr(, "metadata")` holds the index's
#' `metadata` (such as `total_size`, as strings).
#'
#' @param path_or_repo_id A local folder or file, or a Hub repo id such as `"org/name"`.
#' @param revision A branch, a tag or a commit hash (for a repo id).
#' @param lazy If `TRUE`, return a lazy handle instead of reading every tensor.
#' @param token A Hub token for private or gated repositories. By default `HF_TOKEN` or the
#'   token file. It is never printed.
#' @inheritParams safe_load_file
#' @return A named list of arrays with `attr(, "metadata")`, or a handle of class
#'   `hfbridge_safetensors` when `lazy = TRUE`.
#' @family safetensors
#' @export
#' @examples
#' \dontrun{
#' weights <- safe_load_model("gpt2")
#' h <- safe_load_model("path/to/sharded-model", lazy = TRUE)
#' h$shape("model.embed_tokens.weight")
#' }
safe_load_model <- function(path_or_repo_id, revision = "main", lazy = FALSE, tensors = NULL,
                            int64 = c("double", "error"), layout = c("python", "reversed"),
                            token = NULL) {
  check_string(path_or_repo_id, "path_or_repo_id")
  check_string(revision, "revision")
  check_flag(lazy, "lazy")
  st_check_names(tensors)
  opts <- st_read_options(int64, layout)
  hub_check_token(token)
  py <- py_call("safetensors", "open_model", path_or_repo_id, revision = revision,
                env = hf_env(), token = token)
  handle <- st_handle(py, path_or_repo_id)
  if (lazy) return(handle)
  on.exit(handle$close())
  st_read_all(handle, tensors, opts)
}

#' Write R arrays to a safetensors file
#'
#' Writes a named list of R arrays and vectors to a `.safetensors` file that Python's
#' safetensors (and so transformers) loads with the same shapes and values: a `dim` of
#' `c(a, b)` becomes shape `[a, b]` and `x[i, j]` becomes `t[i - 1, j - 1]`; a vector without
#' `dim` becomes a 1-d tensor. The file is written to a temporary file in the same folder and
#' renamed, so a failed save never leaves a partial file behind.
#'
#' @section Types:
#' | R type | default | other `dtype`s |
#' |---|---|---|
#' | double | `float64` | `float32`, `float16`, `bfloat16` (rounded to nearest even); `int64`, `int32`, `int16`, `int8`, `uint8` for whole numbers in range |
#' | integer | `int32` | `int64`, `int16`, `int8`, `uint8` (values must fit); `float64`, `float32`, `float16`, `bfloat16` |
#' | logical | `bool` | none |
#'
#' `NaN` and `Inf` in doubles are kept (`NA_real_` is stored as a NaN; `float64` keeps its bit
#' pattern, so R reads it back as `NA`). `NA` in an integer or logical tensor is refused.
#' Values beyond the range of `float16` become `Inf`. The safetensors names `F64`, `F32`, ...
#' are accepted as dtypes too.
#'
#' @param tensors A named list of numeric or logical arrays or vectors. Names must be unique and
#'   not empty.
#' @param path The file to write.
#' @param metadata `NULL` or a named character vector, stored as the header's `__metadata__`.
#' @param dtype `NULL` for the defaults; one dtype for every tensor it suits (a float dtype
#'   applies to the double tensors, an integer dtype to the integer tensors); or a named
#'   character vector or list giving the dtype of some tensors by name.
#' @param layout `"python"` (the default): `dim(x)` becomes the shape. `"reversed"`: the arrays
#'   are in the layout `safe_load_file(layout = "reversed")` returns, and the reversed `dim(x)`
#'   becomes the shape (no transpose needed).
#' @return `path`, invisibly.
#' @section Errors:
#' An unnamed list, duplicated or empty names, non-numeric elements, `NA` in integer or logical
#' tensors, an unknown dtype or values out of range give `hfbridge_error_invalid_argument`.
#' @family safetensors
#' @export
#' @examples
#' \dontrun{
#' path <- tempfile(fileext = ".safetensors")
#' safe_save_file(list(w = matrix(rnorm(6), 2, 3), ids = 1:4), path,
#'                metadata = c(format = "pt"), dtype = c(w = "float32"))
#' safe_load_file(path)
#' }
safe_save_file <- function(tensors, path, metadata = NULL, dtype = NULL,
                           layout = c("python", "reversed")) {
  check_string(path, "path")
  args <- st_save_args(tensors, metadata, dtype, layout)
  py_call("safetensors", "save_file", args$tensors, path.expand(path), metadata = args$metadata,
          dtypes = args$dtypes, default_dtype = args$default_dtype, reversed = args$reversed)
  invisible(path)
}

#' Safetensors bytes in memory
#'
#' `safe_serialize()` turns a named list of arrays into the bytes of a safetensors file (a raw
#' vector), with the same rules as [safe_save_file()]. `safe_deserialize()` reads such bytes
#' back into a named list, with the same rules as [safe_load_file()].
#'
#' @inheritParams safe_save_file
#' @param buffer A raw vector holding a safetensors file.
#' @inheritParams safe_load_file
#' @return `safe_serialize()`: a raw vector. `safe_deserialize()`: a named list of arrays with
#'   `attr(, "metadata")`.
#' @family safetensors
#' @export
#' @examples
#' \dontrun{
#' bytes <- safe_serialize(list(x = array(1:6, c(2, 3))))
#' safe_deserialize(bytes)$x
#' }
safe_serialize <- function(tensors, metadata = NULL, dtype = NULL,
                           layout = c("python", "reversed")) {
  args <- st_save_args(tensors, metadata, dtype, layout)
  py_call("safetensors", "serialize", args$tensors, metadata = args$metadata,
          dtypes = args$dtypes, default_dtype = args$default_dtype, reversed = args$reversed)
}

#' @rdname safe_serialize
#' @export
safe_deserialize <- function(buffer, tensors = NULL, ..., int64 = c("double", "error"),
                             layout = c("python", "reversed"), framework = "torch",
                             device = "cpu") {
  st_check_dots(...)
  st_check_framework(framework, device)
  if (!is.raw(buffer)) {
    hfbridge_abort("invalid_argument", "`buffer` must be a raw vector, as safe_serialize() returns.")
  }
  st_check_names(tensors)
  opts <- st_read_options(int64, layout)
  handle <- st_handle(py_call("safetensors", "deserialize", buffer), "<raw vector>")
  on.exit(handle$close())
  st_read_all(handle, tensors, opts)
}

#' @export
print.hfbridge_safetensors <- function(x, ..., n = Inf) {
  cat(format(x, n = n), sep = "\n")
  invisible(x)
}

#' @export
format.hfbridge_safetensors <- function(x, ..., n = Inf) {
  t <- x$table
  head <- sprintf("<hfbridge_safetensors> %s: %d tensors, %s%s", x$path, length(t$names),
                  st_format_bytes(sum(t$nbytes)), if (x$is_closed()) " (closed)" else "")
  meta <- x$metadata
  if (length(meta)) {
    head <- c(head, paste0("metadata: ", paste(names(meta), meta, sep = " = ", collapse = ", ")))
  }
  shown <- seq_len(min(length(t$names), n))
  if (!length(shown)) return(head)
  shapes <- vapply(t$shapes[shown], function(s) {
    if (length(s)) paste(s, collapse = " x ") else "scalar"
  }, "")
  rows <- paste(format(c("name", t$names[shown])), format(c("shape", shapes)),
                format(c("dtype", t$dtypes[shown])),
                format(c("size", st_format_bytes(t$nbytes[shown])), justify = "right"))
  more <- length(t$names) - length(shown)
  c(head, paste0("  ", rows), if (more > 0) sprintf("  ... %d more (print(x, n = Inf))", more))
}

# ---- the handle ------------------------------------------------------------------------------

st_handle <- function(py, source) {
  info <- st_method(py, "info")
  table <- st_table(info)
  closed <- FALSE
  self <- new.env(parent = emptyenv())
  self$py <- py
  self$path <- if (identical(source, "<raw vector>")) source else path.expand(source)
  self$table <- table
  self$names <- table$names
  self$metadata <- st_metadata(info$metadata)
  self$keys <- function() as.character(unlist(info$keys))
  self$shape <- function(name) table$shapes[[st_position(self, name)]]
  self$dtype <- function(name) table$dtypes[[st_position(self, name)]]
  self$get_tensor <- function(name, int64 = c("double", "error"),
                              layout = c("python", "reversed")) {
    st_read(self, name, NULL, st_read_options(int64, layout))
  }
  self$get_slice <- function(name, ..., drop = FALSE, int64 = c("double", "error")) {
    index <- st_dots_index(eval(substitute(alist(...))), parent.frame())
    i <- st_position(self, name)
    x <- st_read(self, name, st_index(index, table$shapes[[i]], name),
                 st_read_options(int64, "python"))
    if (isTRUE(drop)) drop(x) else x
  }
  self$is_closed <- function() closed
  self$close <- function() {
    if (!closed) st_method(py, "close")
    closed <<- TRUE
    invisible(NULL)
  }
  class(self) <- "hfbridge_safetensors"
  self
}

# Columns of pybridge's info(): shapes become a list of integer vectors.
st_table <- function(info) {
  ndim <- as.integer(info$ndim)
  flat <- as.numeric(info$shape)
  ends <- cumsum(ndim)
  shapes <- lapply(seq_along(ndim), function(i) {
    as.integer(flat[seq_len(ndim[i]) + ends[i] - ndim[i]])
  })
  list(names = as.character(unlist(info$names)), dtypes = as.character(unlist(info$dtypes)),
       r_types = as.character(unlist(info$r_types)), shapes = shapes,
       nbytes = as.numeric(info$nbytes))
}

st_metadata <- function(meta) {
  if (is.null(meta)) return(NULL)
  values <- vapply(meta, as.character, "")
  structure(unname(values), names = st_or(names(meta), character()))
}

st_position <- function(handle, name) {
  i <- if (is.character(name) && length(name) == 1) match(name, handle$table$names) else NA
  if (is.na(i)) {
    if (!(is.character(name) && length(name) == 1 && !is.na(name))) {
      hfbridge_abort("invalid_argument", "A tensor name must be a single string.")
    }
    st_method(handle$py, "tensor_info", name)  # raises the classed error with the file's names
    hfbridge_abort("invalid_argument", sprintf("No tensor named '%s'.", name), tensor = name)
  }
  i
}

st_read_all <- function(handle, tensors, opts) {
  wanted <- if (is.null(tensors)) handle$table$names else tensors
  rows <- vapply(wanted, function(name) st_position(handle, name), 1L, USE.NAMES = FALSE)
  st_reserve(handle$table, rows)
  out <- vector("list", length(wanted))
  fillable <- handle$table$r_types[rows] %in% c("double", "integer") & st_fill_works()
  if (any(fillable)) out[fillable] <- st_fill_many(handle, wanted[fillable], rows[fillable], opts)
  out[!fillable] <- lapply(wanted[!fillable], function(name) st_read(handle, name, NULL, opts))
  names(out) <- wanted
  attr(out, "metadata") <- handle$metadata
  out
}

# Whole double and integer tensors: R allocates them all, one Python call fills them all.
st_fill_many <- function(handle, names, rows, opts) {
  table <- handle$table
  out <- lapply(rows, function(i) {
    st_alloc(table$r_types[[i]], st_dims(table$shapes[[i]], opts))
  })
  inexact <- as.character(unlist(st_method(handle$py, "fill_many", as.list(names), unname(out),
                                           opts$int64, opts$reversed)))
  scalar <- lengths(table$shapes[rows]) == 0
  out[scalar] <- lapply(out[scalar], as.vector)
  for (name in inexact) st_warn_inexact(name, table$dtypes[[match(name, table$names)]])
  out
}

# One tensor, or the part picked by `index` (a list of 0-based integer arrays or NULL per axis).
st_read <- function(handle, name, index, opts) {
  if (handle$is_closed()) {
    hfbridge_abort("invalid_argument", sprintf("The safetensors handle on %s is closed.",
                                               handle$path), path = handle$path)
  }
  i <- st_position(handle, name)
  shape <- handle$table$shapes[[i]]
  if (!is.null(index)) {
    shape <- vapply(seq_along(index), function(k) {
      if (is.null(index[[k]])) shape[k] else length(index[[k]])
    }, 1L)
  }
  r_type <- handle$table$r_types[[i]]
  if (r_type %in% c("double", "integer") && st_fill_works()) {
    x <- st_alloc(r_type, st_dims(shape, opts))
    inexact <- st_method(handle$py, "fill", name, x, index, opts$int64, opts$reversed)
  } else {
    res <- st_method(handle$py, "read", name, index, opts$int64, opts$reversed)
    x <- res[[1]]
    inexact <- res[[2]]
  }
  # Python still referenced x during the call, so any change to x now copies it: touch the dim
  # only where it differs (a 0-d tensor, one element).
  shape <- st_dims(shape, opts)
  if (!identical(dim(x), if (length(shape)) shape)) dim(x) <- if (length(shape)) shape
  if (isTRUE(inexact)) st_warn_inexact(name, handle$table$dtypes[[i]])
  x
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

st_warn_inexact <- function(name, dtype) {
  hfbridge_warn(
    "precision_loss",
    sprintf(paste0("Tensor '%s' (%s) holds integers beyond 2^53 in magnitude; they were rounded ",
                   "to the nearest double. Use int64 = \"error\" to refuse such files."),
            name, dtype),
    tensor = name, dtype = dtype
  )
}

st_method <- function(object, method, ...) {
  tryCatch(object[[method]](...), error = rethrow_python_error)
}

# ---- slices ----------------------------------------------------------------------------------

st_dots_index <- function(exprs, env) {
  lapply(exprs, function(e) if (identical(e, quote(expr = ))) NULL else eval(e, env))
}

# R-style indices (positions from 1, or logical) to 0-based int32 arrays for Python.
st_index <- function(index, shape, name) {
  if (length(index) != length(shape)) {
    hfbridge_abort("invalid_argument",
                   sprintf("Tensor '%s' has %d dimensions; give one index per dimension (got %d).",
                           name, length(shape), length(index)), tensor = name)
  }
  lapply(seq_along(index), function(k) {
    ix <- index[[k]]
    if (is.null(ix)) return(NULL)
    if (is.logical(ix) && length(ix) == shape[k] && !anyNA(ix)) ix <- which(ix)
    if (!is.numeric(ix) || anyNA(ix) || any(ix < 1 | ix > shape[k] | ix != floor(ix))) {
      hfbridge_abort("invalid_argument",
                     sprintf("Index %d of tensor '%s' must hold positions in 1..%d.", k, name,
                             shape[k]), tensor = name)
    }
    as.array(as.integer(ix) - 1L)
  })
}

# ---- saving ----------------------------------------------------------------------------------

st_save_args <- function(tensors, metadata, dtype, layout) {
  tensors <- st_check_tensors(tensors)
  list(tensors = lapply(tensors, st_as_array), metadata = st_check_metadata(metadata),
       reversed = st_read_options("double", layout)$reversed,
       dtypes = st_dtype_map(dtype, names(tensors)),
       default_dtype = if (length(dtype) == 1 && is.null(names(dtype))) as.character(dtype[[1]]))
}

st_check_tensors <- function(tensors) {
  if (!is.list(tensors)) {
    hfbridge_abort("invalid_argument", "`tensors` must be a named list of arrays or vectors.")
  }
  tensors <- unclass(tensors)
  attributes(tensors) <- list(names = names(tensors))
  if (!length(tensors)) return(structure(list(), names = character()))
  nm <- names(tensors)
  if (is.null(nm) || anyNA(nm) || any(!nzchar(nm))) {
    hfbridge_abort("invalid_argument", "Every tensor needs a name: give a named list.")
  }
  if (anyDuplicated(nm)) {
    hfbridge_abort("invalid_argument", sprintf("Tensor names must be unique; repeated: %s.",
                                               paste(unique(nm[duplicated(nm)]), collapse = ", ")))
  }
  for (name in nm) st_check_tensor(tensors[[name]], name)
  tensors
}

st_check_tensor <- function(x, name) {
  plain <- !is.object(x) || inherits(x, c("matrix", "array", "table"))
  if (!(is.numeric(x) || is.logical(x)) || !plain) {
    hfbridge_abort("invalid_argument",
                   sprintf("Tensor '%s' is %s; only numeric and logical arrays can be saved.",
                           name, class(x)[1]), tensor = name)
  }
  if (!is.double(x) && anyNA(x)) {
    hfbridge_abort("invalid_argument",
                   sprintf("Tensor '%s' holds NA, which safetensors integers and booleans cannot store.",
                           name), tensor = name)
  }
}

# reticulate passes arrays with a dim zero-copy; a plain vector would become a Python list.
st_as_array <- function(x) {
  if (is.null(dim(x))) dim(x) <- length(x)
  x
}

st_check_metadata <- function(metadata) {
  if (is.null(metadata)) return(NULL)
  ok <- (is.character(metadata) || is.list(metadata) && all(vapply(metadata, function(v) {
    is.character(v) && length(v) == 1
  }, TRUE))) && !is.null(names(metadata)) && all(nzchar(names(metadata))) &&
    !anyDuplicated(names(metadata)) && !anyNA(unlist(metadata))
  if (!ok) {
    hfbridge_abort("invalid_argument",
                   "`metadata` must be a named character vector with unique names and no NA.")
  }
  as.list(unlist(metadata))
}

st_dtype_map <- function(dtype, tensor_names) {
  if (is.null(dtype)) return(NULL)
  if (!(is.character(dtype) || is.list(dtype)) || !length(dtype) ||
      anyNA(unlist(dtype)) || !all(vapply(dtype, function(v) is.character(v) && length(v) == 1, TRUE))) {
    hfbridge_abort("invalid_argument",
                   "`dtype` must be one dtype name, or a named vector of dtype names.")
  }
  if (is.null(names(dtype))) {
    if (length(dtype) == 1) return(NULL)
    hfbridge_abort("invalid_argument", "Several dtypes must be named by tensor.")
  }
  unknown <- setdiff(names(dtype), tensor_names)
  if (length(unknown) || any(!nzchar(names(dtype)))) {
    hfbridge_abort("invalid_argument",
                   sprintf("`dtype` names tensors that are not in `tensors`: %s.",
                           paste(unknown, collapse = ", ")))
  }
  as.list(unlist(dtype))
}

# ---- argument checks -------------------------------------------------------------------------

st_check_dots <- function(...) {
  if (...length()) {
    hfbridge_abort("invalid_argument",
                   sprintf("Unknown argument(s): %s.",
                           paste(st_or(names(list(...)), rep("<unnamed>", ...length())), collapse = ", ")))
  }
}

st_check_framework <- function(framework, device) {
  if (!(is.character(framework) && length(framework) == 1 &&
        framework %in% c("torch", "pt", "r", "R", "numpy", "np"))) {
    hfbridge_abort("invalid_argument",
                   "`framework` must be \"torch\", \"pt\", \"r\" or \"numpy\"; hfbridge always returns R arrays.")
  }
  if (!identical(device, "cpu")) {
    hfbridge_abort("unsupported", "hfbridge reads tensors into R memory: `device` must be \"cpu\".")
  }
}

st_check_names <- function(tensors) {
  if (!is.null(tensors) && !(is.character(tensors) && !anyNA(tensors))) {
    hfbridge_abort("invalid_argument", "`tensors` must be NULL or a character vector of names.")
  }
}

st_read_options <- function(int64, layout) {
  if (!(is.character(layout) && length(layout) >= 1 && layout[1] %in% c("python", "reversed"))) {
    hfbridge_abort("invalid_argument", "`layout` must be \"python\" or \"reversed\".")
  }
  list(int64 = st_match_int64(int64), reversed = identical(layout[1], "reversed"))
}

# The dims of a tensor in R: its shape, or the reversed shape in the "reversed" layout.
st_dims <- function(shape, opts) if (opts$reversed) rev(shape) else shape

st_match_int64 <- function(int64) {
  if (!(is.character(int64) && length(int64) >= 1 && int64[1] %in% c("double", "error"))) {
    hfbridge_abort("invalid_argument", "`int64` must be \"double\" or \"error\".")
  }
  int64[1]
}

st_format_bytes <- function(n) {
  units <- c("B", "kB", "MB", "GB", "TB")
  k <- pmax(1, pmin(length(units), floor(log10(pmax(n, 1)) / 3) + 1))
  ifelse(k == 1, sprintf("%.0f B", n), sprintf("%.1f %s", n / 1000^(k - 1), units[k]))
}

st_or <- function(a, b) if (is.null(a)) b else a
