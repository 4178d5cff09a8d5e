# Datasets on the Hub as data frames, and data frames back to the Hub: the verbs and their
# argument checks. pybridge.datasets finds the configs and splits as the datasets library does and
# reads with pyarrow; columns.R makes the data frame (dataset_frame(): R copies each column out of
# arrow's buffers in C) and the columns written back (dataset_spec()).

#' Read a dataset from the Hugging Face Hub as a data frame
#'
#' The R form of `datasets.load_dataset(repo_id, config, split = split)`. The configs and splits
#' are found as the Python library finds them: the `configs:` of the dataset card's YAML, or the
#' file and folder names (`data/train-00000-of-00003.parquet`, `test.csv`, `validation/*.jsonl`),
#' or the Hub's parquet export (`revision = "refs/convert/parquet"`). It reads parquet (also
#' sharded), csv, tsv, json and jsonl with `pyarrow`.
#'
#' Only the files of the split are downloaded, into the Hugging Face cache that Python uses; once
#' cached, the same call works offline (`HF_HUB_OFFLINE=1`) with no request. `columns` reads only
#' those columns; `n_max` reads only the parquet row groups (and the shards) that hold the first
#' `n_max` rows.
#'
#' Columns are converted whole: `ClassLabel` features become factors with their names as levels;
#' sequences become list columns; integers become integer (a 64-bit column whose values do not fit
#' becomes double, with a `hfbridge_warning_precision_loss` warning beyond 2^53); floats double;
#' booleans logical; strings character (UTF-8); timestamps POSIXct; dates Date; structs data
#' frame columns; nulls `NA` (a null list is `NULL`). R strings cannot hold a NUL byte: each one is
#' read as the two characters `\0`.
#'
#' String columns are read lazily, as pandas reads them: each R string is made when it is first
#' used (making a million takes R about a quarter of a second), and until all are made the column
#' holds the arrow buffers they come from. To R code it is an ordinary character vector; a copy,
#' a change or `saveRDS()` gives an ordinary one.
#'
#' A missing config, split or column is an error of class `hfbridge_error_entry_not_found` whose
#' fields `configs`, `splits` or `columns` name the ones that exist; a gated or missing repository
#' gives `hfbridge_error_gated` or `hfbridge_error_repo_not_found`; a file that cannot be read
#' (cut short, corrupted, not its format, a string that is not UTF-8) gives
#' `hfbridge_error_invalid_file` with its `filename`.
#'
#' @param repo_id The dataset's repository id, such as `"imdb"` or `"org/name"`.
#' @param split The split, such as `"train"` or `"test"`.
#' @param config The config name; `NULL` for the default one.
#' @param revision A branch, tag or commit, or `"refs/convert/parquet"` for the Hub's parquet
#'   export.
#' @param columns `NULL` for every column, or the names of the columns to read.
#' @param n_max The most rows to read: `Inf` (or any number beyond R's integer range) for all.
#' @param ... Not used; must be empty.
#' @param token A Hub token for private or gated datasets. By default `HF_TOKEN` or the token
#'   file.
#' @param quiet If `TRUE`, show no download progress bar.
#' @return A data frame.
#' @family datasets
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' imdb <- hub_dataset("imdb")
#' table(imdb$label)
#' head(hub_dataset("imdb", split = "test", columns = "text", n_max = 5))
hub_dataset <- function(repo_id, split = "train", config = NULL, revision = "main",
                        columns = NULL, n_max = Inf, ..., token = NULL, quiet = FALSE) {
  dataset_check_dots(...)
  dataset_check_common(repo_id, split, config, revision, token)
  columns <- dataset_check_columns(columns)
  n_max <- check_limit(n_max, "n_max")
  check_flags(quiet = quiet)
  res <- dataset_py("read", repo_id, split = split, config = config, revision = revision,
                    columns = columns, n_max = n_max, env = hf_env(), token = token, quiet = quiet)
  dataset_frame(res)
}

#' Configs, splits and features of a dataset on the Hub
#'
#' What `datasets` knows of a dataset before loading it: its configs and splits (found as
#' [hub_dataset()] finds them), the rows and bytes of each split, and the features. Rows come from
#' the dataset card's `dataset_info`, or from the parquet files' footers; they are `NA` for csv
#' and json files, which are counted only by reading them.
#'
#' Offline (`HF_HUB_OFFLINE=1`) it answers from the cache, as online, once every split has been
#' read; a split none of whose files is cached is `hfbridge_error_offline_not_cached`, naming it.
#'
#' @inheritParams hub_dataset
#' @return A list with `repo_id`, `sha` (the commit), `default_config`, `splits` (a data frame:
#'   `config`, `split`, `num_rows`, `num_bytes`, `num_files`, `format`) and `features` (a data
#'   frame: `config`, `column`, `type`, `levels`, the ClassLabel names joined by `|`).
#' @family datasets
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' info <- hub_dataset_info("imdb")
#' info$splits
#' info$features
hub_dataset_info <- function(repo_id, revision = "main", token = NULL) {
  dataset_check_common(repo_id, "train", NULL, revision, token)
  res <- dataset_py("info", repo_id, revision = revision, env = hf_env(), token = token)
  splits <- columns_frame(res$splits, c(
    config = "character", split = "character", num_rows = "double", num_bytes = "double",
    num_files = "integer", format = "character"))
  splits$num_rows[is.nan(splits$num_rows)] <- NA_real_  # unknown (csv, json): NA, not NaN
  features <- columns_frame(res$features, c(
    config = "character", column = "character", type = "character", levels = "character"))
  list(repo_id = res$repo_id, sha = res$sha,
       default_config = if (is.null(res$default_config)) NA_character_ else res$default_config,
       splits = splits, features = features)
}

#' Read a dataset chunk by chunk
#'
#' For a split larger than memory: each chunk of at most `chunk_size` rows is read as a data frame
#' (as [hub_dataset()] reads it) and passed to `callback(chunk, index)`; only one chunk is held at
#' a time. Parquet files are read batch by batch and their shards downloaded one at a time, as
#' they are reached. A progress bar shows the rows read, out of the total where it is known.
#'
#' @inheritParams hub_dataset
#' @param chunk_size The most rows in one chunk.
#' @param callback A function of the chunk (a data frame) and its index (1, 2, ...). Return
#'   `FALSE` to stop early.
#' @param progress Show a progress bar.
#' @return The callback's results, as a list, invisibly.
#' @family datasets
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' counts <- hub_dataset_chunks("imdb", "train", chunk_size = 10, function(chunk, i) {
#'   table(chunk$label)
#' })
#' Reduce(`+`, counts)
hub_dataset_chunks <- function(repo_id, split = "train", chunk_size = 10000L, callback,
                               config = NULL, revision = "main", columns = NULL, token = NULL,
                               progress = !quiet, quiet = FALSE) {
  dataset_check_common(repo_id, split, config, revision, token)
  columns <- dataset_check_columns(columns)
  dataset_check_chunking(chunk_size, callback)
  check_flag(quiet, "quiet")  # before `progress`, whose default reads it
  check_flags(progress = progress)
  reader <- dataset_chunk_reader$new(dataset_py(
    "open_chunks", repo_id, split = split, config = config, revision = revision,
    columns = columns, chunk_size = as.integer(chunk_size), env = hf_env(), token = token,
    quiet = quiet), sprintf("Reading %s (%s)", repo_id, split))
  on.exit(reader$close())
  invisible(reader$read(callback, progress))
}

#' Upload a data frame to the Hub as a dataset split
#'
#' Pushes `df` as one split, in one commit, as `datasets`' `push_to_hub()` pushes a split: it
#' writes `df` as one parquet file, `data/<split>-00000-of-00001.parquet` (`<config>/...` for a
#' config other than `"default"`), with the features recorded as `datasets` records them (a
#' factor becomes a `ClassLabel` with its levels as names); it deletes the split's earlier files
#' there (all its `<split>-*` shards); and it updates the README's YAML with `datasets`' own code:
#' the config's `dataset_info` (features, rows and bytes of the split) and its `configs:`
#' `data_files`, keeping the other splits, the other configs and the card's text. The dataset
#' repository is created if needed. [hub_dataset()] reads the split back equal, and Python's
#' `datasets.load_dataset()` reads it with the same features.
#'
#' The splits of a config share their features: columns that differ from those of the config's
#' other splits are refused (`hfbridge_error_invalid_argument`), as `push_to_hub()` refuses them;
#' a split that is the config's only one may change its columns. A commit made by someone else
#' while the upload runs is `hfbridge_error_stale_parent`: nothing is written.
#'
#' Columns may be integer, double, logical, character, factor, Date, POSIXct (stored in UTC when
#' it has no time zone), or lists of such vectors (one type per column; integer and double mix,
#' as double). `NA` is written as a null and `NaN` as a float NaN, so both read back as they
#' were. Matrix, array and data frame columns are refused, and so is text that is not
#' UTF-8, in names, strings and factor levels (`hfbridge_error_invalid_argument`, naming the
#' column).
#'
#' @param df A data frame.
#' @param repo_id The dataset's repository id, `"org/name"`.
#' @param split The split name.
#' @param config The config to write (`push_to_hub()`'s `config_name`); `NULL` is `"default"`,
#'   whose files are under `data/`.
#' @param private Create the repository as private (if it does not exist).
#' @param commit_message The commit message.
#' @inheritParams hub_dataset
#' @return The commit, as [hub_upload_file()] returns it.
#' @family datasets
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' df <- data.frame(text = c("good", "bad"), label = factor(c("pos", "neg")))
#' res <- hub_upload_dataset(df, "me/reviews", split = "train")
#' res$commit_url
#' hub_dataset("me/reviews")
hub_upload_dataset <- function(df, repo_id, split = "train", config = NULL, private = FALSE,
                               commit_message = NULL, token = NULL, quiet = FALSE) {
  if (!is.data.frame(df) || ncol(df) == 0L || is.null(names(df)) || anyNA(names(df)) ||
      !all(nzchar(names(df))) || anyDuplicated(names(df))) {
    hfbridge_abort("invalid_argument", paste0(
      "`df` must be a data frame with at least one column, and unique, non-empty names."),
      argument = "df")
  }
  dataset_check_common(repo_id, split, config, "main", token)
  if (!is.null(commit_message)) check_string(commit_message, "commit_message")
  check_flags(private = private, quiet = quiet)
  names(df) <- check_text_values(names(df), "A column name of `df`", "df", "column")
  columns <- list(names = as.list(names(df)),
                  columns = unname(Map(dataset_spec, df, names(df))))
  res <- dataset_py("upload", columns, repo_id, split = split, config = config,
                    private = private,
                    commit_message = commit_message, quiet = quiet, env = hf_env(),
                    token = token)
  publish_commit(res)
}

# ---- calling pybridge.datasets ------------------------------------------------------------------

# A split read chunk by chunk: a pybridge.datasets.Chunks job, whose steps give one chunk each.
dataset_chunk_reader <- R6::R6Class(
  classname = "hfbridge_dataset_chunks",
  inherit = hfbridge_handle,
  cloneable = FALSE,
  public = list(
    label = NULL,
    initialize = function(py, label) {
      super$initialize(py)
      self$label <- label
    },
    # callback(chunk, index) for each chunk, until it returns FALSE; their values, as a list.
    read = function(callback, progress) {
      out <- list()
      each <- function(state) {
        if (is.null(state$chunk)) return(TRUE)
        value <- callback(dataset_frame(state$chunk), length(out) + 1L)
        out[length(out) + 1L] <<- list(value)
        !isFALSE(value)
      }
      job_run(private$live(), self$label, quiet = !progress, whole = FALSE, each = each)
      out
    }
  ),
  private = list(
    noun = "dataset chunk reader",
    remedy = "Call hub_dataset_chunks() again.",
    describe = function(...) sprintf("<hfbridge_dataset_chunks> %s%s", self$label, private$status())
  )
)

dataset_py <- function(fun, ...) py_call("datasets", fun, ...)

dataset_check_dots <- function(...) {
  if (...length()) {
    hfbridge_abort("invalid_argument", sprintf(
      "Unknown argument(s) %s: hub_dataset() takes repo_id, split, config, revision, columns, %s",
      paste(names(list(...)), collapse = ", "), "n_max, token and quiet."), argument = "...")
  }
}

dataset_check_common <- function(repo_id, split, config, revision, token) {
  hub_check_repo(repo_id, revision, "dataset")
  check_string(split, "split", "\"train\"")
  if (!is.null(config)) check_string(config, "config", "\"default\"")
  hub_check_token(token)
}

dataset_check_chunking <- function(chunk_size, callback) {
  check_count(chunk_size, "chunk_size", 1L)
  takes_two <- is.function(callback) &&
    (length(formals(callback)) >= 2L || "..." %in% names(formals(callback)) ||
       is.primitive(callback))
  if (!takes_two) {
    hfbridge_abort("invalid_argument", "`callback` must be a function(chunk, index).",
                   argument = "callback")
  }
}

dataset_check_columns <- function(columns) {
  if (is.null(columns)) return(NULL)
  if (!is.character(columns) || length(columns) == 0L || anyNA(columns) ||
      !all(nzchar(columns))) {
    hfbridge_abort("invalid_argument", sprintf(
      "`columns` must be NULL or column names such as c(\"text\", \"label\"), not %s.",
      describe_value(columns)), argument = "columns")
  }
  as.list(unique(columns))
}
