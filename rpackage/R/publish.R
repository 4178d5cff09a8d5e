# Publishing to the Hub: R checks the arguments, pybridge.publish does the work with
# huggingface_hub (HfApi) and returns plain values.

#' Create a repository on the Hub
#'
#' Creates a model, dataset or Space repository, as `huggingface_hub`'s `create_repo()` does. A
#' Space needs `space_sdk` (`"gradio"`, `"docker"`, `"static"` or `"streamlit"`).
#'
#' Every write needs a token with write access: the `token` argument, `HF_TOKEN` or the token
#' file, read at each call. It is never printed. Failures arrive as classed conditions:
#' `hfbridge_error_auth` (no token, or one that may not write), `hfbridge_error_repo_exists`
#' (the repo exists and `exist_ok = FALSE`), `hfbridge_error_network`,
#' `hfbridge_error_invalid_argument`.
#'
#' @inheritParams hub_download
#' @param private If `TRUE`, the repository is private.
#' @param exist_ok If `TRUE`, a repository that exists already is not an error.
#' @param space_sdk For a Space: `"gradio"`, `"docker"`, `"static"` or `"streamlit"`.
#' @param token A Hub token with write access. By default `HF_TOKEN` or the token file.
#' @return A list with `repo_id`, `repo_type` and `url`.
#' @family publish
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' # The demo Hub lets the examples' token (HF_TOKEN) write the repositories of "me".
#' repo <- hub_create_repo("me/tiny-gpt2", exist_ok = TRUE)
#' repo$url
#' space <- hub_create_repo("me/my-app", repo_type = "space", space_sdk = "docker",
#'                          exist_ok = TRUE)
#' space$repo_type
hub_create_repo <- function(repo_id, repo_type = "model", private = FALSE, exist_ok = FALSE,
                            space_sdk = NULL, token = NULL) {
  hub_check_repo(repo_id, "main", repo_type)
  check_flags(private = private, exist_ok = exist_ok)
  if (!is.null(space_sdk)) check_string(space_sdk, "space_sdk", "\"docker\"")
  hub_check_token(token)
  publish_py("create_repo", repo_id, repo_type = repo_type, private = private,
             exist_ok = exist_ok, space_sdk = space_sdk, env = hf_env(), token = token)
}

#' Upload a file or a folder to a Hub repository
#'
#' `hub_upload_file()` uploads one local file as `path_in_repo`; `hub_upload_folder()` uploads
#' the files of a folder, filtered by glob patterns, in one commit. Files that did not change
#' are not sent again. Large and binary files go through Git LFS. With `create_pr = TRUE` the
#' commit opens a pull request instead of moving the branch. With `parent_commit`, the commit is
#' refused (`hfbridge_error_stale_parent`) if the branch moved on since that commit.
#'
#' Failures: `hfbridge_error_auth`, `hfbridge_error_repo_not_found`,
#' `hfbridge_error_revision_not_found`, `hfbridge_error_stale_parent`,
#' `hfbridge_error_network` (also for an upload cut mid-way: nothing is committed), and
#' `hfbridge_error_invalid_argument` (for example a local path that does not exist).
#'
#' @inheritParams hub_create_repo
#' @param path The local file.
#' @param path_in_repo Where the file goes in the repository (by default its file name); for
#'   `hub_upload_folder()` a folder inside the repository (by default the top).
#' @param revision The branch to commit to.
#' @param commit_message The commit's summary; `NULL` writes one that names what changed.
#' @param commit_description The commit's longer description.
#' @param create_pr If `TRUE`, open a pull request with the commit.
#' @param parent_commit `NULL`, or the commit hash the branch must still be at.
#' @param quiet If `TRUE`, show no progress bars.
#' @return A list with `commit_oid`, `commit_url`, `pr_url` (`NA` unless `create_pr`),
#'   `repo_id` and `revision`.
#' @family publish
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' invisible(hub_create_repo("me/tiny-gpt2", exist_ok = TRUE))
#' notes <- file.path(tempdir(), "notes.txt")
#' writeLines("Trained on three sentences.", notes)
#' res <- hub_upload_file(notes, repo_id = "me/tiny-gpt2")
#' res$commit_oid
#'
#' model_dir <- file.path(tempdir(), "my-model")
#' dir.create(model_dir, showWarnings = FALSE)
#' writeLines('{"model_type": "gpt2"}', file.path(model_dir, "config.json"))
#' writeLines("scratch", file.path(model_dir, "run.tmp"))
#' res <- hub_upload_folder(model_dir, "me/tiny-gpt2", ignore_patterns = "*.tmp",
#'                          delete_patterns = "*.safetensors", commit_message = "New weights")
#' res$commit_url
#' hub_list_files("me/tiny-gpt2")
hub_upload_file <- function(path, path_in_repo = basename(path), repo_id, repo_type = "model",
                            revision = "main", commit_message = NULL, commit_description = NULL,
                            create_pr = FALSE, parent_commit = NULL, token = NULL,
                            quiet = FALSE) {
  check_string(path, "path")
  hub_check_repo(repo_id, revision, repo_type)
  check_string(path_in_repo, "path_in_repo", "\"config.json\"")
  publish_check_commit(commit_message, commit_description, parent_commit)
  check_flags(create_pr = create_pr, quiet = quiet)
  hub_check_token(token)
  res <- publish_py("upload_file", path.expand(path), path_in_repo, repo_id,
                    repo_type = repo_type, revision = revision, commit_message = commit_message,
                    commit_description = commit_description, create_pr = create_pr,
                    parent_commit = parent_commit, quiet = quiet, env = hf_env(), token = token)
  publish_commit(res)
}

#' @rdname hub_upload_file
#' @param folder The local folder.
#' @param allow_patterns,ignore_patterns `NULL` or globs (`"*.json"`) of the local files to
#'   upload or to leave out.
#' @param delete_patterns `NULL` or globs of remote files to delete in the same commit, unless
#'   the upload replaces them (for example `"*.safetensors"` to drop old shards).
#' @export
hub_upload_folder <- function(folder, repo_id, allow_patterns = NULL, ignore_patterns = NULL,
                              delete_patterns = NULL, commit_message = NULL, revision = "main",
                              create_pr = FALSE, repo_type = "model", path_in_repo = NULL,
                              commit_description = NULL, parent_commit = NULL, token = NULL,
                              quiet = FALSE) {
  check_string(folder, "folder")
  hub_check_repo(repo_id, revision, repo_type)
  allow_patterns <- hub_check_patterns(allow_patterns, "allow_patterns")
  ignore_patterns <- hub_check_patterns(ignore_patterns, "ignore_patterns")
  delete_patterns <- hub_check_patterns(delete_patterns, "delete_patterns")
  if (!is.null(path_in_repo)) check_string(path_in_repo, "path_in_repo")
  publish_check_commit(commit_message, commit_description, parent_commit)
  check_flags(create_pr = create_pr, quiet = quiet)
  hub_check_token(token)
  res <- publish_py("upload_folder", path.expand(folder), repo_id, repo_type = repo_type,
                    path_in_repo = path_in_repo, allow_patterns = allow_patterns,
                    ignore_patterns = ignore_patterns, delete_patterns = delete_patterns,
                    commit_message = commit_message, commit_description = commit_description,
                    revision = revision, create_pr = create_pr, parent_commit = parent_commit,
                    quiet = quiet, env = hf_env(), token = token)
  publish_commit(res)
}

#' Delete a file, create a branch or a tag in a Hub repository
#'
#' `hub_delete_file()` deletes one file in a commit. `hub_create_branch()` creates a branch at
#' `revision` (the head of `main` by default) and `hub_create_tag()` tags a revision; both fail
#' with `hfbridge_error_ref_exists` if the name is taken, unless `exist_ok = TRUE`.
#'
#' @inheritParams hub_upload_file
#' @param path_in_repo The file to delete.
#' @return `hub_delete_file()`: the commit, as [hub_upload_file()] returns it.
#'   `hub_create_branch()` and `hub_create_tag()`: a list with `repo_id`, the `branch` or `tag`,
#'   and the `commit` it points to.
#' @family publish
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' invisible(hub_create_repo("me/tiny-gpt2", exist_ok = TRUE))
#' notes <- file.path(tempdir(), "notes.txt")
#' writeLines("A file to delete.", notes)
#' invisible(hub_upload_file(notes, repo_id = "me/tiny-gpt2", quiet = TRUE))
#' hub_delete_file("notes.txt", "me/tiny-gpt2")$commit_oid
#' str(hub_create_branch("me/tiny-gpt2", "experiment"))
#' str(hub_create_tag("me/tiny-gpt2", "v1.0", tag_message = "First release"))
#' hub_repo_info("me/tiny-gpt2", revision = "v1.0")$sha
hub_delete_file <- function(path_in_repo, repo_id, repo_type = "model", revision = "main",
                            commit_message = NULL, create_pr = FALSE, parent_commit = NULL,
                            token = NULL) {
  hub_check_filename(path_in_repo)
  hub_check_repo(repo_id, revision, repo_type)
  publish_check_commit(commit_message, NULL, parent_commit)
  check_flags(create_pr = create_pr)
  hub_check_token(token)
  res <- publish_py("delete_file", path_in_repo, repo_id, repo_type = repo_type,
                    revision = revision, commit_message = commit_message, create_pr = create_pr,
                    parent_commit = parent_commit, env = hf_env(), token = token)
  publish_commit(res)
}

#' @rdname hub_delete_file
#' @param branch The new branch's name.
#' @param revision For a branch: where it starts (`NULL`: the head of `main`). For a tag: what
#'   it tags. For a deletion: the branch to commit to.
#' @param exist_ok If `TRUE`, a name that exists already is not an error.
#' @export
hub_create_branch <- function(repo_id, branch, revision = NULL, repo_type = "model",
                              exist_ok = FALSE, token = NULL) {
  hub_check_repo(repo_id, hub_or(revision, "main"), repo_type)
  check_string(branch, "branch", "\"dev\"")
  check_flags(exist_ok = exist_ok)
  hub_check_token(token)
  publish_py("create_branch", repo_id, branch, revision = revision, repo_type = repo_type,
             exist_ok = exist_ok, env = hf_env(), token = token)
}

#' @rdname hub_delete_file
#' @param tag The tag's name.
#' @param tag_message `NULL`, or a message (an annotated tag).
#' @export
hub_create_tag <- function(repo_id, tag, revision = "main", tag_message = NULL,
                           repo_type = "model", exist_ok = FALSE, token = NULL) {
  hub_check_repo(repo_id, revision, repo_type)
  check_string(tag, "tag", "\"v1.0\"")
  if (!is.null(tag_message)) check_string(tag_message, "tag_message")
  check_flags(exist_ok = exist_ok)
  hub_check_token(token)
  publish_py("create_tag", repo_id, tag, revision = revision, tag_message = tag_message,
             repo_type = repo_type, exist_ok = exist_ok, env = hf_env(), token = token)
}

#' Who the Hub token belongs to
#'
#' Asks the Hub (`HF_ENDPOINT`) whose token is in use. The token itself is never returned or
#' printed; `token_source` says where it was found.
#'
#' @inheritParams hub_create_repo
#' @return A list with `name`, `type`, `role` (`"read"` or `"write"`), `token_source` and
#'   `endpoint`.
#' @family publish
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' hub_whoami()$name
hub_whoami <- function(token = NULL) {
  hub_check_token(token)
  publish_py("whoami", env = hf_env(), token = token)
}

#' Save a model folder as transformers' save_pretrained() does
#'
#' Writes, from R values, the files `save_pretrained()` writes:
#' \itemize{
#'   \item `config.json` from `config`, a named list (for example read with
#'     `jsonlite::read_json()` from a model's config.json and changed);
#'   \item the weights as safetensors: `model.safetensors`, or shards
#'     `model-00001-of-0000N.safetensors` with `model.safetensors.index.json` when they are
#'     larger than `max_shard_size`, split as transformers splits them;
#'   \item the tokenizer files (`tokenizer.json`, `tokenizer_config.json`) from an hfbridge
#'     tokenizer, or copied from a repo id or folder through transformers (one that holds no
#'     tokenizer files is `hfbridge_error_invalid_file`); the config's `bos_token_id`,
#'     `eos_token_id`, ... name its special tokens;
#'   \item `README.md`, a model card whose YAML metadata holds `library_name` (default
#'     `"transformers"`), `license`, `tags`, `pipeline_tag`, `base_model` and the other fields
#'     of `card`, with `card$description` as its text. `card` may also be the whole README text.
#' }
#' `weights` are named like the model's state dict (`safe_load_model()` gives them so) and
#' `x[i, j]` in R is `t[i-1, j-1]` in torch. The files are written in a scratch folder and moved
#' in at the end, so a failure leaves `dir` as it was; weight files of an earlier save that the
#' new one does not replace are removed. Other files in `dir` (such as `modeling_*.py` of a
#' custom architecture) are kept.
#'
#' @param dir The folder to write (created if missing; its parent must exist).
#' @param weights A named list of numeric arrays.
#' @param config The model configuration: a named list, or the path of a config.json. It needs
#'   `model_type`, or `auto_map` for a custom architecture.
#' @param tokenizer `NULL`, an hfbridge tokenizer ([tokenizer_from_pretrained()]), or a repo id
#'   or folder holding a tokenizer.
#' @param card `NULL`, a named list of card metadata (`license`, `tags`, `pipeline_tag`,
#'   `base_model`, `library_name`, `datasets`, `language`, `description`, ...), or README text.
#' @param max_shard_size The largest shard, as `"5GB"`, `"500MB"` or a number of bytes.
#' @param dtype The stored type of the weights: `"float32"` (the default, as most models),
#'   `"float16"`, `"bfloat16"`, `"float64"`; or a named vector for some tensors, as in
#'   [safe_save_file()].
#' @inheritParams hub_upload_file
#' @return `hub_save_model()`: the paths written, invisibly.
#' @family publish
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' weights <- safe_load_model("gpt2")
#' weights[["h.0.attn.c_attn.weight"]][1, 1] <- 0
#' config <- hub_download("gpt2", "config.json")   # a list, or the path of a config.json
#' dir <- file.path(tempdir(), "my-gpt2")
#' hub_save_model(dir, weights, config, tokenizer = tokenizer_from_pretrained("gpt2"),
#'                card = list(license = "mit", base_model = "gpt2",
#'                            pipeline_tag = "text-generation"))
#' list.files(dir)
#' res <- hub_push_model("me/my-gpt2", weights, config, tokenizer = "gpt2", quiet = TRUE)
#' hub_list_files("me/my-gpt2")
hub_save_model <- function(dir, weights, config, tokenizer = NULL, card = NULL,
                           max_shard_size = "50GB", dtype = "float32", token = NULL) {
  check_string(dir, "dir")
  args <- publish_model_args(weights, config, tokenizer, card, max_shard_size, dtype)
  hub_check_token(token)
  files <- model_folder_py("save_model", path.expand(dir), args$weights, args$config,
                      tokenizer = args$tokenizer, card = args$card,
                      max_shard_size = args$max_shard_size, dtypes = args$dtypes,
                      default_dtype = args$default_dtype, env = hf_env(), token = token)
  invisible(as.character(unlist(files)))
}

#' @rdname hub_save_model
#' @param repo_id The model repository to push to; created if it does not exist.
#' @param private If `TRUE`, a new repository is private.
#' @details `hub_push_model()` saves into `dir` (a temporary folder by default), creates the
#'   repository if needed and uploads the folder in one commit, deleting weight files on the
#'   Hub that the new save does not have. It returns the commit, as [hub_upload_file()] does.
#' @export
hub_push_model <- function(repo_id, weights, config, tokenizer = NULL, card = NULL, dir = NULL,
                           private = FALSE, commit_message = NULL, revision = "main",
                           create_pr = FALSE, max_shard_size = "50GB", dtype = "float32",
                           token = NULL, quiet = FALSE) {
  hub_check_repo(repo_id, revision, "model")
  if (!is.null(dir)) dir <- path.expand(check_string(dir, "dir"))
  args <- publish_model_args(weights, config, tokenizer, card, max_shard_size, dtype)
  check_flags(private = private, create_pr = create_pr, quiet = quiet)
  publish_check_commit(commit_message, NULL, NULL)
  hub_check_token(token)
  res <- publish_py("push_model", repo_id, args$weights, args$config,
                    tokenizer = args$tokenizer, card = args$card, folder = dir,
                    private = private, commit_message = commit_message, revision = revision,
                    create_pr = create_pr, max_shard_size = args$max_shard_size,
                    dtypes = args$dtypes, default_dtype = args$default_dtype, quiet = quiet,
                    env = hf_env(), token = token)
  publish_commit(res)
}

# ---- helpers ----------------------------------------------------------------------------------

publish_py <- function(fun, ...) py_call("publish", fun, ...)
model_folder_py <- function(fun, ...) py_call("model_folder", fun, ...)

publish_commit <- function(res) {
  res$pr_url <- if (is.null(res$pr_url)) NA_character_ else res$pr_url
  res[c("commit_oid", "commit_url", "pr_url", "repo_id", "revision")]
}

publish_check_commit <- function(commit_message, commit_description, parent_commit) {
  if (!is.null(commit_message)) check_string(commit_message, "commit_message")
  if (!is.null(commit_description)) check_string(commit_description, "commit_description")
  if (!is.null(parent_commit) &&
      !grepl("^[0-9a-f]{7,40}$", check_string(parent_commit, "parent_commit"))) {
    hfbridge_abort("invalid_argument", sprintf(
      "`parent_commit` must be a commit hash (7 to 40 hex digits), not \"%s\".", parent_commit),
      argument = "parent_commit")
  }
  invisible(TRUE)
}

publish_model_args <- function(weights, config, tokenizer, card, max_shard_size, dtype) {
  st <- st_save_args(weights, NULL, dtype, "python")
  if (!length(st$tensors)) {
    hfbridge_abort("invalid_argument", "`weights` must be a named list of at least one array.",
                   argument = "weights")
  }
  if (is.character(config)) {
    config <- path.expand(check_string(config, "config"))
  } else if (!is.list(config) || is.null(names(config)) || !length(config)) {
    hfbridge_abort("invalid_argument", paste0(
      "`config` must be a named list (what config.json holds) or the path of a config.json."),
      argument = "config")
  }
  if (inherits(tokenizer, "hfbridge_tokenizer")) {
    tokenizer <- tokenizer$handle
  } else if (!is.null(tokenizer)) {
    check_string(tokenizer, "tokenizer", "an hfbridge tokenizer, a repo id or a folder")
  }
  if (!is.null(card) && !is.list(card)) check_string(card, "card")
  if (is.numeric(max_shard_size) && length(max_shard_size) == 1 && !is.na(max_shard_size) &&
      max_shard_size > 0) {
    max_shard_size <- as.numeric(max_shard_size)
  } else if (!grepl("^[0-9.]+ *[KMGT]B$", check_string(max_shard_size, "max_shard_size"),
                    ignore.case = TRUE)) {
    hfbridge_abort("invalid_argument", sprintf(
      "`max_shard_size` must be a size such as \"5GB\" or \"500MB\", or bytes, not \"%s\".",
      max_shard_size), argument = "max_shard_size")
  }
  list(weights = st$tensors, config = config, tokenizer = tokenizer, card = card,
       max_shard_size = max_shard_size, dtypes = st$dtypes,
       default_dtype = hub_or(st$default_dtype, "float32"))
}
