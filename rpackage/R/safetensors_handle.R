# The lazy safetensors handle: safe_open(), and the R6 class behind it and behind
# safe_load_model(lazy = TRUE).

#' Open a safetensors file lazily
#'
#' Returns a handle on a memory-mapped safetensors file: nothing but the header is read until a
#' tensor is asked for, and reading one tensor does not read the others. Tensors come back as in
#' [safe_load_file()] (same types, same `dim()`, same indexing).
#'
#' The handle is an R6 object (an environment) of class `hfbridge_safetensors` with
#' * `$keys()`: the tensor names, sorted as Python's `safe_open(...).keys()` sorts them;
#' * `$get_tensor(name, int64 = "double", layout = "python")`: one tensor as an R array;
#' * `$get_slice(name, ..., drop = FALSE)`: part of one tensor, one index per dimension, R style
#'   (positive positions or a logical vector; `NULL` or an empty argument for all). Only the
#'   pages holding the selected values are read. `h$get_slice("wte.weight", 1:10, )` gives the
#'   first 10 rows;
#' * `$shape(name)`, `$dtype(name)`: the shape (an integer vector; double when a dimension is
#'   beyond 2^31 - 1, which R cannot read) and the safetensors dtype;
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
#' @examplesIf hfbridge:::examples_ready()
#' h <- safe_open(hub_download("gpt2", "model.safetensors"))
#' h
#' head(h$keys())
#' h$shape("wte.weight")
#' first_rows <- h$get_slice("wte.weight", 1:10, )
#' dim(first_rows)
#' h$close()
safe_open <- function(path, ..., framework = "torch", device = "cpu") {
  st_check_dots(...)
  st_check_framework(framework, device)
  check_string(path, "path")
  st_handle$new(py_call("safetensors", "open_file", path.expand(path)), path)
}

#' @export
print.hfbridge_safetensors <- function(x, ..., n = Inf) x$print(n = n)

#' @export
format.hfbridge_safetensors <- function(x, ..., n = Inf) x$format(n = n)

# ---- the handle ------------------------------------------------------------------------------

# The handle (documented in ?safe_open): fields and methods on a pybridge SafetensorsFile or
# ShardedFile. The Python object unmaps its files when it is garbage collected.
st_handle <- R6::R6Class(
  classname = "hfbridge_safetensors",
  inherit = hfbridge_handle,
  cloneable = FALSE,
  public = list(
    path = NULL,
    table = NULL,
    names = NULL,
    metadata = NULL,

    initialize = function(py, source) {
      info <- st_method(py, "info")
      super$initialize(py)
      self$path <- if (identical(source, "<raw vector>")) source else path.expand(source)
      self$table <- st_table(info)
      self$names <- self$table$names
      self$metadata <- st_metadata(info$metadata)
      private$sorted_keys <- as.character(unlist(info$keys))
    },
    keys = function() private$sorted_keys,
    shape = function(name) self$table$shapes[[st_position(self, name)]],
    dtype = function(name) self$table$dtypes[[st_position(self, name)]],
    get_tensor = function(name, int64 = c("double", "error"), layout = c("python", "reversed")) {
      st_read(self, name, NULL, st_read_options(int64, layout))
    },
    get_slice = function(name, ..., drop = FALSE, int64 = c("double", "error")) {
      index <- st_dots_index(eval(substitute(alist(...))), parent.frame())
      i <- st_position(self, name)
      x <- st_read(self, name, st_index(index, self$table$shapes[[i]], name),
                   st_read_options(int64, "python"))
      if (isTRUE(drop)) drop(x) else x
    }
  ),
  active = list(
    # The Python object, for the st_*() functions below.
    py = function() private$live()
  ),
  private = list(
    sorted_keys = NULL,
    noun = "safetensors handle",
    remedy = "Open the file again with safe_open() or safe_load_model(lazy = TRUE).",
    subject = function() sprintf("The safetensors handle on %s", self$path),
    fields = function() list(path = self$path),
    describe = function(n = Inf) {
      t <- self$table
      head <- sprintf("<hfbridge_safetensors> %s: %d tensors, %s%s", self$path, length(t$names),
                      st_format_bytes(sum(t$nbytes)), private$status())
      meta <- self$metadata
      if (length(meta)) {
        head <- c(head, paste0("metadata: ",
                               paste(names(meta), meta, sep = " = ", collapse = ", ")))
      }
      shown <- seq_len(min(length(t$names), n))
      if (!length(shown)) return(head)
      shapes <- vapply(t$shapes[shown], function(s) {
        if (length(s)) st_format_shape(s, " x ") else "scalar"
      }, "")
      rows <- paste(format(c("name", t$names[shown])), format(c("shape", shapes)),
                    format(c("dtype", t$dtypes[shown])),
                    format(c("size", st_format_bytes(t$nbytes[shown])), justify = "right"))
      more <- length(t$names) - length(shown)
      c(head, paste0("  ", rows), if (more > 0) sprintf("  ... %d more (print(x, n = Inf))", more))
    }
  )
)

# Columns of pybridge's info(): shapes become a list of integer vectors (double vectors for the
# shapes with a dimension beyond an R integer, which st_check_fits() refuses to read).
st_table <- function(info) {
  ndim <- as.integer(info$ndim)
  flat <- as.numeric(info$shape)
  ends <- cumsum(ndim)
  shapes <- lapply(seq_along(ndim), function(i) {
    dims <- flat[seq_len(ndim[i]) + ends[i] - ndim[i]]
    if (all(dims <= .Machine$integer.max)) as.integer(dims) else dims
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

# One tensor, or the part picked by `index` (a list of 0-based integer arrays or NULL per axis).
st_read <- function(handle, name, index, opts) {
  py <- handle$py  # first: a closed handle says so, whatever the name
  i <- st_position(handle, name)
  st_check_fits(handle, i)
  shape <- handle$table$shapes[[i]]
  if (!is.null(index)) {
    shape <- vapply(seq_along(index), function(k) {
      if (is.null(index[[k]])) shape[k] else length(index[[k]])
    }, 1L)
  }
  r_type <- handle$table$r_types[[i]]
  fill <- r_type %in% c("double", "integer") && st_fill_works()
  st_check_memory(handle, i, list(shape), fill)
  if (fill) {
    x <- st_alloc(r_type, st_dims(shape, opts))
    lossy <- st_method(py, "fill", name, x, index, opts$int64, opts$reversed)
  } else {
    res <- st_method(py, "read", name, index, opts$int64, opts$reversed)
    x <- res[[1]]
    lossy <- res[[2]]
  }
  # Python still referenced x during the call, so any change to x now copies it: touch the dim
  # only where it differs (a 0-d tensor, one element).
  shape <- st_dims(shape, opts)
  if (!identical(dim(x), if (length(shape)) shape)) dim(x) <- if (length(shape)) shape
  if (isTRUE(lossy)) st_warn_lossy(name, handle$table$dtypes[[i]])
  x
}

# R array dims are integers: a tensor with a longer dimension cannot be read, not even in part.
st_check_fits <- function(handle, rows) {
  too_long <- rows[vapply(handle$table$shapes[rows], is.double, NA)]
  if (!length(too_long)) return(invisible(NULL))
  name <- handle$table$names[[too_long[1]]]
  hfbridge_abort("unsupported", sprintf(
    "Tensor '%s' has shape [%s], and R array dimensions are limited to 2^31 - 1.", name,
    st_format_shape(handle$table$shapes[[too_long[1]]], ", ")), tensor = name, path = handle$path)
}

# The memory the R results of tensors `rows` of these shapes need, asked of pybridge before any
# is allocated (a result that cannot fit is hfbridge_error_memory, not R's "cannot allocate
# vector"). A result that comes through numpy (not `filled`) exists twice for a moment.
st_check_memory <- function(handle, rows, shapes, filled) {
  width <- c(double = 8, integer = 4, logical = 4, complex = 16)[handle$table$r_types[rows]]
  cells <- vapply(shapes, function(s) prod(as.numeric(s)), 1)
  need <- sum(width * cells * ifelse(filled, 1, 2))
  if (need < 2^20) return(invisible(NULL))
  py_call("safetensors", "check_memory", need, as.list(handle$table$names[rows]), handle$path)
}

st_format_shape <- function(shape, sep) {
  paste(format(shape, scientific = FALSE, trim = TRUE), collapse = sep)
}

st_method <- function(object, method, ...) {
  call_python(object[[method]], ...)
}

# ---- slices ----------------------------------------------------------------------------------

st_dots_index <- function(exprs, env) {
  # quote(expr = ) is the empty argument of x[i, ]; it cannot be held in a variable.
  lapply(exprs, function(e) if (identical(e, quote(expr = ))) NULL else eval(e, env)) # nolint
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

st_format_bytes <- function(n) {
  units <- c("B", "kB", "MB", "GB", "TB")
  k <- pmax(1, pmin(length(units), floor(log10(pmax(n, 1)) / 3) + 1))
  ifelse(k == 1, sprintf("%.0f B", n), sprintf("%.1f %s", n / 1000^(k - 1), units[k]))
}
