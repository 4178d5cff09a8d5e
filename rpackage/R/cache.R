# The local Hugging Face cache: what is in it, and deleting from it (pybridge.cache).

#' List the repositories in the local Hugging Face cache
#'
#' Scans the cache folder (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
#' `~/.cache/huggingface/hub`), the one Python's `huggingface_hub` uses, with its
#' `scan_cache_dir()`.
#'
#' @return A data frame with one row per cached repository and the columns `repo_id`,
#'   `repo_type`, `revisions` (each cached revision as `ref@commit`, or its commit alone when no
#'   ref points at it, separated by `"; "`), `size_on_disk` (bytes), `nb_files`,
#'   `last_accessed` (POSIXct) and `path`. The attribute `cache_dir` holds the folder scanned.
#' @family cache
#' @export
#' @examples
#' \dontrun{
#' hub_cache_scan()
#' }
hub_cache_scan <- function() {
  res <- py_call("cache", "scan", env = hf_env())
  out <- data.frame(
    repo_id = as.character(unlist(res$repo_id)),
    repo_type = as.character(unlist(res$repo_type)),
    revisions = as.character(unlist(res$revisions)),
    size_on_disk = as.numeric(res$size_on_disk),
    nb_files = as.integer(res$nb_files),
    last_accessed = as.POSIXct(as.numeric(res$last_accessed), origin = "1970-01-01"),
    path = as.character(unlist(res$path)),
    stringsAsFactors = FALSE
  )
  attr(out, "cache_dir") <- res$cache_dir
  out
}

#' Delete a repository or one revision from the local Hugging Face cache
#'
#' Uses `huggingface_hub`'s `delete_revisions()`: files shared with a revision that is kept stay.
#'
#' @param repo_id The repository id, as in the `repo_id` column of [hub_cache_scan()].
#' @param revision `NULL` to delete every cached revision (the whole repository folder), or one
#'   revision: a ref such as `"main"`, a commit hash, or its first 7 or more characters.
#' @param repo_type `"model"`, `"dataset"` or `"space"`.
#' @return The number of bytes freed, invisibly.
#' @family cache
#' @export
#' @examples
#' \dontrun{
#' hub_cache_delete("gpt2")
#' hub_cache_delete("bert-base-uncased", revision = "main")
#' }
hub_cache_delete <- function(repo_id, revision = NULL, repo_type = "model") {
  hub_check_repo(repo_id, if (is.null(revision)) "main" else revision, repo_type)
  res <- py_call("cache", "delete", repo_id, revision = revision, repo_type = repo_type,
                 env = hf_env())
  invisible(as.numeric(res$freed))
}
