# Writing safetensors from R: safe_save_file() and safe_serialize() (with its inverse,
# safe_deserialize(), documented beside it). R checks the tensors and the dtypes,
# pybridge.safetensors encodes them and the Hugging Face library writes the file.

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
#' | double | `float64` | `float32`, `float16`, `bfloat16` (rounded to nearest even); integers\* |
#' | integer | `int32` | `int64`, `int16`, `int8`, `uint8`\*; `float64` and the floats above |
#' | logical | `bool` | none |
#'
#' \* Integer dtypes take whole numbers only, and each value must fit the dtype's range.
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
#' @examplesIf hfbridge:::examples_ready()
#' path <- tempfile(fileext = ".safetensors")
#' safe_save_file(list(w = matrix(rnorm(6), 2, 3), ids = 1:4), path,
#'                metadata = c(format = "pt"), dtype = c(w = "float32"))
#' safe_load_file(path)
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
#' @examplesIf hfbridge:::examples_ready()
#' bytes <- safe_serialize(list(x = array(1:6, c(2, 3))))
#' length(bytes)
#' safe_deserialize(bytes)$x
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
    hfbridge_abort("invalid_argument",
                   "`buffer` must be a raw vector, as safe_serialize() returns.")
  }
  st_check_names(tensors)
  opts <- st_read_options(int64, layout)
  handle <- st_handle$new(py_call("safetensors", "deserialize", buffer), "<raw vector>")
  on.exit(handle$close())
  st_read_all(handle, tensors, opts)
}

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
  if (length(not_utf8(nm))) {
    hfbridge_abort("invalid_argument", paste("Tensor names must be valid UTF-8:", to_utf8_advice))
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
                   sprintf(paste("Tensor '%s' holds NA, which safetensors integers and booleans",
                                 "cannot store."), name), tensor = name)
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
  metadata <- unlist(metadata)
  if (length(not_utf8(c(names(metadata), metadata)))) {
    hfbridge_abort("invalid_argument", paste("`metadata` is not valid UTF-8:", to_utf8_advice),
                   argument = "metadata")
  }
  as.list(metadata)
}

st_dtype_map <- function(dtype, tensor_names) {
  if (is.null(dtype)) return(NULL)
  if (!(is.character(dtype) || is.list(dtype)) || !length(dtype) ||
      anyNA(unlist(dtype)) ||
      !all(vapply(dtype, function(v) is.character(v) && length(v) == 1, TRUE))) {
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
