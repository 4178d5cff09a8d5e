# Hub verbs: R checks and coerces the arguments, pybridge.hub does the work with huggingface_hub.

#' Download a file from the Hugging Face Hub
#'
#' Downloads one file of a repository into the local Hugging Face cache, the one Python's
#' `huggingface_hub` uses, and returns its path. A file already cached is not downloaded again:
#' with a pinned commit (a 40-character hash) or offline, no request is made at all; with a
#' branch such as `"main"` one small request checks that the cached copy is current.
#'
#' The environment variables Python's `huggingface_hub` reads are read at each call, so
#' `Sys.setenv()` takes effect at once: the cache folder (`HF_HUB_CACHE`, else
#' `HUGGINGFACE_HUB_CACHE`, else `HF_HOME/hub`), `HF_ENDPOINT`, offline mode (`HF_HUB_OFFLINE`,
#' else `TRANSFORMERS_OFFLINE`), the token (`HF_TOKEN`, `HF_TOKEN_PATH`, the token file
#' `$HF_HOME/token`, `HF_HUB_DISABLE_IMPLICIT_TOKEN`), the timeouts (`HF_HUB_ETAG_TIMEOUT`,
#' `HF_HUB_DOWNLOAD_TIMEOUT`) and `HF_HUB_DISABLE_PROGRESS_BARS`; `docs/environment.md` in the
#' hfbridge sources lists them all. Network failures are retried with backoff. Failures arrive
#' as classed conditions (see [hfbridge_errors]): `hfbridge_error_repo_not_found`,
#' `hfbridge_error_revision_not_found`, `hfbridge_error_entry_not_found`, `hfbridge_error_gated`,
#' `hfbridge_error_auth`, `hfbridge_error_offline_not_cached`, `hfbridge_error_network` and
#' `hfbridge_error_invalid_argument`, with the fields `repo_id`, `filename`, `revision` and
#' `repo_type`.
#'
#' `hf_hub_download()` is the same function under the name the Python library and the
#' transformer course use.
#'
#' @param repo_id The repository id, such as `"gpt2"` or `"org/name"`.
#' @param filename The path of the file inside the repository, such as `"config.json"`.
#' @param revision A branch, a tag or a commit hash.
#' @param repo_type `"model"`, `"dataset"` or `"space"`.
#' @param local_files_only If `TRUE`, use only the cache and make no request.
#' @param force_download If `TRUE`, download again even if the file is cached.
#' @param token A Hub token for private or gated repositories. By default `HF_TOKEN` or the
#'   token file. It is never printed.
#' @param quiet If `TRUE`, show no progress bar. Otherwise a bar shows once a download has run
#'   for 2 seconds.
#' @return The path of the file in the cache, as a string.
#' @family hub
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' # The examples run against a local demo Hub (see hub_mirror_demo()).
#' config_path <- hub_download("gpt2", "config.json")
#' readLines(config_path, n = 3)
#' weights_path <- hub_download(repo_id = "gpt2", filename = "model.safetensors",
#'                              revision = "main")
#' file.size(weights_path)
#' config_path <- hf_hub_download("distilbert-base-uncased", filename = "config.json")
hub_download <- function(repo_id, filename, revision = "main", repo_type = "model",
                         local_files_only = FALSE, force_download = FALSE, token = NULL,
                         quiet = FALSE) {
  hub_check_repo(repo_id, revision, repo_type)
  hub_check_filename(filename)
  check_flags(local_files_only = local_files_only, force_download = force_download,
              quiet = quiet)
  hub_check_token(token)
  hub_py("download", repo_id, filename, revision = revision, repo_type = repo_type,
          local_files_only = local_files_only, force_download = force_download, quiet = quiet,
          env = hf_env(), token = token)
}

#' @rdname hub_download
#' @export
hf_hub_download <- hub_download

#' Download a whole repository (a snapshot) from the Hugging Face Hub
#'
#' Downloads the files of a repository at one revision into the local cache and returns the
#' snapshot folder, which holds them under their repository paths. `allow_patterns` and
#' `ignore_patterns` are globs (`"*.json"`, `"tokenizer*"`, `"1_Pooling/*"`): a file is kept if
#' it matches any allow pattern and no ignore pattern. Offline or with `local_files_only = TRUE`
#' the cached snapshot is returned if it holds every file asked for.
#'
#' @inheritParams hub_download
#' @param allow_patterns `NULL` (every file) or a character vector of globs to keep.
#' @param ignore_patterns `NULL` or a character vector of globs to leave out.
#' @return The path of the snapshot folder, as a string.
#' @family hub
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' folder <- hub_snapshot("sentence-transformers/all-MiniLM-L6-v2",
#'                        allow_patterns = c("*.json", "*.txt"))
#' list.files(folder, recursive = TRUE)
hub_snapshot <- function(repo_id, revision = "main", repo_type = "model", allow_patterns = NULL,
                         ignore_patterns = NULL, local_files_only = FALSE,
                         force_download = FALSE, token = NULL, quiet = FALSE) {
  hub_check_repo(repo_id, revision, repo_type)
  allow_patterns <- hub_check_patterns(allow_patterns, "allow_patterns")
  ignore_patterns <- hub_check_patterns(ignore_patterns, "ignore_patterns")
  check_flags(local_files_only = local_files_only, force_download = force_download,
              quiet = quiet)
  hub_check_token(token)
  hub_py("snapshot", repo_id, revision = revision, repo_type = repo_type,
          allow_patterns = allow_patterns, ignore_patterns = ignore_patterns,
          local_files_only = local_files_only, force_download = force_download, quiet = quiet,
          env = hf_env(), token = token)
}

#' Download several repositories at once
#'
#' The forms of Metaflow's `@huggingface_hub(load = ...)`, in R:
#' \itemize{
#'   \item repo ids: `hub_load(c("bert-base-uncased", "gpt2"))`;
#'   \item a repo id and a local folder to download into:
#'     `hub_load(list(c("bert-base-uncased", "./model_directory")))`. At the top level,
#'     `c(repo_id, local_dir)` is read as such a pair when `local_dir` cannot be a repo id
#'     (it starts with `.`, `/` or `~`, or has more than one `/`);
#'   \item a list with `repo_id` and any of `revision`, `allow_patterns`, `ignore_patterns`,
#'     `repo_type`, `local_dir` and `force_download`, as for [hub_snapshot()]:
#'     `hub_load(list(repo_id = "bert-base-uncased", allow_patterns = c("*.json", "*.txt")))`;
#'   \item a list mixing these forms.
#' }
#'
#' @param specs The repositories, in one of the forms above.
#' @inheritParams hub_download
#' @return A named character vector of local folders, named by repo id, in the order given.
#' @family hub
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' paths <- hub_load(list(
#'   "gpt2",
#'   list(repo_id = "bert-base-uncased", allow_patterns = c("*.json", "*.txt"))
#' ))
#' list.files(paths[["bert-base-uncased"]])
hub_load <- function(specs, token = NULL, quiet = FALSE) {
  check_no_na(specs, "specs")
  check_flags(quiet = quiet)
  hub_check_token(token)
  res <- hub_py("load", specs, cwd = getwd(), env = hf_env(), token = token, quiet = quiet)
  paths <- as.character(unlist(res$path))
  names(paths) <- as.character(unlist(res$repo_id))
  paths
}

#' Information about a repository on the Hub
#'
#' @inheritParams hub_download
#' @return A list with `id`, `sha` (the commit of `revision`) and `files`, a data frame with the
#'   columns `path` and `size` (bytes).
#' @family hub
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' info <- hub_repo_info("gpt2")
#' info$sha
#' info$files
hub_repo_info <- function(repo_id, revision = "main", repo_type = "model", token = NULL) {
  hub_check_repo(repo_id, revision, repo_type)
  hub_check_token(token)
  res <- hub_py("repo_info", repo_id, revision = revision, repo_type = repo_type,
                 env = hf_env(), token = token)
  files <- columns_frame(res, c(path = "character", size = "double"))
  list(id = res$id, sha = res$sha, files = files)
}

#' List the files of a repository on the Hub
#'
#' @inheritParams hub_download
#' @return A character vector of the paths of the repository's files.
#' @family hub
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' hub_list_files("gpt2")
hub_list_files <- function(repo_id, revision = "main", repo_type = "model", token = NULL) {
  hub_check_repo(repo_id, revision, repo_type)
  hub_check_token(token)
  res <- hub_py("list_files", repo_id, revision = revision, repo_type = repo_type,
                 env = hf_env(), token = token)
  as.character(unlist(res))
}

#' Check whether a file exists in a repository, without downloading it
#'
#' One request that reads the file's metadata. As in `huggingface_hub`, a missing file,
#' revision or repository gives `FALSE`; a gated repository, a refused token or a network
#' failure is an error. Offline (`HF_HUB_OFFLINE`), the cache answers.
#'
#' @inheritParams hub_download
#' @return `TRUE` or `FALSE`.
#' @family hub
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' hub_file_exists("gpt2", "model.safetensors")
#' hub_file_exists("gpt2", "no-such-file.bin")
hub_file_exists <- function(repo_id, filename, revision = "main", repo_type = "model",
                            token = NULL) {
  hub_check_repo(repo_id, revision, repo_type)
  hub_check_filename(filename)
  hub_check_token(token)
  isTRUE(hub_py("file_exists", repo_id, filename, revision = revision,
                 repo_type = repo_type, env = hf_env(), token = token))
}

# ---- calling pybridge.hub ----------------------------------------------------------------------

hub_py <- function(fun, ...) py_call("hub", fun, ...)

# ---- argument checks (before Python starts) ----------------------------------------------------

hub_repo_id_pattern <- "^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"

hub_invalid <- function(argument, message, ...) {
  hfbridge_abort("invalid_argument", message, argument = argument, ...)
}

hub_is_repo_id <- function(x) {
  grepl(hub_repo_id_pattern, x) && !grepl("..", x, fixed = TRUE) &&
    !grepl("--", x, fixed = TRUE) && nchar(x) <= 96
}

hub_check_repo_id <- function(repo_id) {
  check_string(repo_id, "repo_id", "\"gpt2\" or \"org/name\"")
  if (!hub_is_repo_id(repo_id)) {
    hub_invalid("repo_id", sprintf(paste0(
      "`repo_id` \"%s\" is not a valid repo id: use \"name\" or \"org/name\" with letters, ",
      "digits, '-', '_' and '.', without '..' or '--' (at most 96 characters)."), repo_id),
      repo_id = repo_id)
  }
  invisible(repo_id)
}

hub_check_repo <- function(repo_id, revision, repo_type) {
  hub_check_repo_id(repo_id)
  check_string(revision, "revision", "\"main\", a tag or a commit hash")
  check_string(repo_type, "repo_type", "\"model\"")
  check_repo_type(repo_type, repo_id = repo_id)
  invisible(TRUE)
}

hub_check_filename <- function(filename) {
  check_string(filename, "filename", "\"config.json\"")
  if (startsWith(filename, "/") || grepl("(^|[/\\\\])[.][.]([/\\\\]|$)", filename)) {
    hub_invalid("filename", sprintf(paste0(
      "`filename` \"%s\" must be a path inside the repository, without \"..\" or a leading ",
      "\"/\", such as \"config.json\" or \"1_Pooling/config.json\"."), filename),
      filename = filename)
  }
  invisible(filename)
}

hub_check_token <- function(token) {
  if (is.null(token)) return(invisible(NULL))
  if (!is.character(token) || length(token) != 1 || is.na(token) || !nzchar(token)) {
    hub_invalid("token", "`token` must be NULL or one non-empty string.")
  }
  if (length(not_utf8(token)) || !validUTF8(token)) {
    hub_invalid("token", "`token` is not valid UTF-8 text, which no token is (it is not shown).")
  }
  invisible(NULL)
}

# NULL, or a list of globs (a list, so that one pattern stays a list in Python).
hub_check_patterns <- function(patterns, argument) {
  if (is.null(patterns)) return(NULL)
  if (!is.character(patterns) || length(patterns) == 0 || anyNA(patterns) ||
      !all(nzchar(patterns))) {
    hub_invalid(argument, sprintf(paste(
      "`%s` must be NULL or a character vector of globs such as c(\"*.json\", \"*.txt\"),",
      "without NA or empty strings, not %s."), argument, describe_value(patterns)))
  }
  as.list(check_texts(patterns, argument))
}

hub_or <- function(x, default) if (is.null(x)) default else x
