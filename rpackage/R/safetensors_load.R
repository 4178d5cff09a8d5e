# Reading safetensors into R: safe_load_file() and safe_load_model(). R checks the arguments,
# pybridge.safetensors checks and maps the files (with the Hugging Face safetensors library), and
# the tensors are read through a handle (safetensors_handle.R), most of them by the fill fast path
# (safetensors_fill.R).

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
#' | `I32` | integer; -2^31 is R's `NA_integer_` (it reads as `NA` and warns, see below) |
#' | `I16`, `I8`, `U16`, `U8` | integer |
#' | `U32` | double (exact) |
#' | `I64`, `U64` | double; beyond 2^53 in magnitude a value is rounded and warns (see below) |
#' | `BOOL` | logical |
#' | `C64` | complex |
#' | `F4`, `F6_E2M3`, `F6_E3M2` | not read: `hfbridge_error_unsupported` |
#'
#' The warnings: an `I32` value of -2^31 reads as `NA`, with a warning of class
#' `hfbridge_warning_na_introduced`; an `I64` or `U64` value beyond 2^53 in magnitude is rounded
#' to the nearest double, with a warning of class `hfbridge_warning_precision_loss`
#' (`int64 = "error"` refuses such a file instead).
#'
#' A 0-d tensor becomes a length-1 vector without `dim`; a 1-d tensor a 1-d array; an empty
#' tensor keeps its shape (for example `dim()` of `c(0, 3)`). R array dimensions are limited to
#' 2^31 - 1: a tensor with a longer dimension (even an empty one such as `[0, 2^31]`) gives
#' `hfbridge_error_unsupported`; read the others with `tensors =`.
#'
#' @section Errors:
#' A file that is missing, truncated, not safetensors at all (such as a pickle `.bin`), or whose
#' header is broken (a length beyond the file, invalid JSON, overlapping or out-of-range offsets,
#' an unknown dtype) gives an error of class `hfbridge_error_invalid_file` with the field `path`.
#' The file is checked by Python's safetensors library and by hfbridge before any byte is read.
#'
#' Tensors whose R results need more memory than is free (on the machine, or under the cgroup's
#' limit in a container) are refused before anything is allocated, with an error of class
#' `hfbridge_error_memory` whose fields `bytes` (the memory needed) and `limit` (the memory
#' free) say how large they would be; read such a tensor in parts with [safe_open()] and
#' `$get_slice()`. The same holds for `$get_tensor()` and `$get_slice()`.
#'
#' @section Speed and memory:
#' R allocates each result without writing it, and Python writes the converted values straight
#' into it, in one pass over the data shared between the CPU's cores (reticulate's own
#' conversion makes two copies and a transpose on one core). Results of 1 MiB and more live
#' outside R's heap (they are ordinary vectors to R code; a copy is an ordinary R vector), so no
#' garbage collection is needed to make room for them. The memory of such results that R has
#' collected is kept for the next load to reuse without page faults; the operating system may
#' take it back at any time, and what the next load does not reuse is freed when it ends. When
#' they outgrow 1 GiB, then twice their size at the last time, hfbridge asks R for a full garbage
#' collection. Peak memory is about the size of the result plus the file's pages in the operating
#' system's cache. The transpose from the file's row-major order is most of the remaining work:
#' `layout = "reversed"` skips it.
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
#' @examplesIf hfbridge:::examples_ready()
#' path <- hub_download(repo_id = "gpt2", filename = "model.safetensors")
#' weights <- safe_load_file(path)
#' names(weights)[1:5]
#' dim(weights[["wte.weight"]])
#' attr(weights, "metadata")
safe_load_file <- function(path, tensors = NULL, ..., int64 = c("double", "error"),
                           layout = c("python", "reversed"), framework = "torch",
                           device = "cpu") {
  st_check_dots(...)
  st_check_framework(framework, device)
  check_string(path, "path")
  opts <- st_read_options(int64, layout)
  st_check_names(tensors)
  handle <- st_handle$new(py_call("safetensors", "open_file", path.expand(path)), path)
  on.exit(handle$close())
  st_read_all(handle, tensors, opts)
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
#' @examplesIf hfbridge:::examples_ready()
#' weights <- safe_load_model("gpt2")
#' length(weights)
#' # A sharded copy, read lazily: tensors are read when asked for.
#' sharded <- file.path(tempdir(), "sharded-gpt2")
#' hub_save_model(sharded, weights, hub_download("gpt2", "config.json"), max_shard_size = 50000)
#' list.files(sharded)
#' h <- safe_load_model(sharded, lazy = TRUE)
#' h$shape("wte.weight")
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
  handle <- st_handle$new(py, path_or_repo_id)
  if (lazy) return(handle)
  on.exit(handle$close())
  st_read_all(handle, tensors, opts)
}

st_read_all <- function(handle, tensors, opts) {
  wanted <- if (is.null(tensors)) handle$table$names else tensors
  rows <- vapply(wanted, function(name) st_position(handle, name), 1L, USE.NAMES = FALSE)
  st_check_fits(handle, rows)
  fillable <- handle$table$r_types[rows] %in% c("double", "integer") & st_fill_works()
  st_check_memory(handle, rows, handle$table$shapes[rows], fillable)
  st_reserve(handle$table, rows, fillable)
  out <- vector("list", length(wanted))
  if (any(fillable)) out[fillable] <- st_fill_many(handle, wanted[fillable], rows[fillable], opts)
  out[!fillable] <- lapply(wanted[!fillable], function(name) st_read(handle, name, NULL, opts))
  names(out) <- wanted
  attr(out, "metadata") <- handle$metadata
  out
}

# Values that R cannot hold exactly: an I32 -2^31 is NA_integer_, an I64 or U64 beyond 2^53 is
# rounded to a double.
st_warn_lossy <- function(name, dtype) {
  if (identical(dtype, "I32")) {
    hfbridge_warn(
      "na_introduced",
      sprintf(paste0("Tensor '%s' (I32) holds -2^31 (-2147483648), which is NA_integer_ in R; ",
                     "those values read as NA."), name),
      tensor = name, dtype = dtype
    )
  } else {
    hfbridge_warn(
      "precision_loss",
      sprintf(paste0("Tensor '%s' (%s) holds integers beyond 2^53 in magnitude; they were rounded ",
                     "to the nearest double. Use int64 = \"error\" to refuse such files."),
              name, dtype),
      tensor = name, dtype = dtype
    )
  }
}

# ---- argument checks -------------------------------------------------------------------------

st_check_dots <- function(...) {
  if (...length()) {
    hfbridge_abort("invalid_argument",
                   sprintf("Unknown argument(s): %s.",
                           paste(st_or(names(list(...)), rep("<unnamed>", ...length())),
                                 collapse = ", ")))
  }
}

st_check_framework <- function(framework, device) {
  if (!(is.character(framework) && length(framework) == 1 &&
        framework %in% c("torch", "pt", "r", "R", "numpy", "np"))) {
    hfbridge_abort("invalid_argument",
                   paste("`framework` must be \"torch\", \"pt\", \"r\" or \"numpy\";",
                         "hfbridge always returns R arrays."))
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

st_or <- function(a, b) if (is.null(a)) b else a
