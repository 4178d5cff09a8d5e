# The local Hugging Face cache: what is in it, and deleting from it (pybridge.cache).

#' List the repositories in the local Hugging Face cache
#'
#' Scans the cache folder (`HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `HF_HOME/hub`, else
#' `~/.cache/huggingface/hub`), the one Python's `huggingface_hub` uses, with its
#' `scan_cache_dir()`. Caches written by the R package hfhub are read too: a ref it wrote with a
#' trailing newline is rewritten to the bare commit (atomically; the commit does not change).
#'
#' Two things the rows do not show are kept as attributes and told in one message (class
#' `hfbridge_message_cache_scan`; silence it with [suppressMessages()]):
#' \itemize{
#'   \item `warnings`: what `scan_cache_dir()` could not read, such as a repository folder
#'     without snapshots. Such a repository is left out of the rows.
#'   \item `incomplete`: partial downloads (`blobs/*.incomplete`), a data frame with `repo_id`,
#'     `repo_type`, `path`, `size` and `in_use`. `in_use` is `TRUE` while a live download holds
#'     the file's lock; a file with `in_use = FALSE` was left by an interrupted download. The next
#'     download from that repository, or [hub_cache_delete()], removes those.
#' }
#'
#' @return A data frame with one row per cached repository and the columns `repo_id`,
#'   `repo_type`, `revisions` (each cached revision as `ref@commit`, or its commit alone when no
#'   ref points at it, separated by `"; "`), `size_on_disk` (bytes), `nb_files`,
#'   `last_accessed` (POSIXct) and `path`. The attribute `cache_dir` holds the folder scanned,
#'   and `warnings` and `incomplete` are described above.
#' @family cache
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' hub_download("gpt2", "config.json")
#' scan <- hub_cache_scan()
#' scan
#' attr(scan, "warnings")
#' attr(scan, "incomplete")
hub_cache_scan <- function() {
  res <- py_call("cache", "scan", env = hf_env())
  out <- columns_frame(res, c(
    repo_id = "character", repo_type = "character", revisions = "character",
    size_on_disk = "double", nb_files = "integer", last_accessed = "POSIXct", path = "character"))
  incomplete <- columns_frame(res$incomplete, c(
    repo_id = "character", repo_type = "character", path = "character", size = "double",
    in_use = "logical"))
  attr(out, "cache_dir") <- res$cache_dir
  attr(out, "warnings") <- as.character(unlist(res$warnings))
  attr(out, "incomplete") <- incomplete
  cache_scan_message(attr(out, "warnings"), incomplete)
  out
}

# One message for what the rows leave out, classed so that it can be caught or silenced.
cache_scan_message <- function(warnings, incomplete) {
  stale <- incomplete[!incomplete$in_use, , drop = FALSE]
  lines <- character()
  if (length(warnings)) {
    lines <- c(lines, sprintf(
      "hub_cache_scan(): %d cache folder(s) could not be read and are not in the table:",
      length(warnings)), paste0("  ", warnings))
  }
  if (nrow(stale)) {
    lines <- c(lines, sprintf(paste0(
      "hub_cache_scan(): %d partial download(s) (%s bytes) left by interrupted downloads in %s. ",
      "The next download from that repository, or hub_cache_delete(), removes them."),
      nrow(stale), format(sum(stale$size), big.mark = ","),
      paste(unique(stale$repo_id), collapse = ", ")))
  }
  if (!length(lines)) return(invisible(NULL))
  message(structure(
    class = c("hfbridge_message_cache_scan", "message", "condition"),
    list(message = paste0(paste(lines, collapse = "\n"), "\n"), call = NULL,
         warnings = warnings, incomplete = stale)
  ))
}

#' Delete a repository or one revision from the local Hugging Face cache
#'
#' Uses `huggingface_hub`'s `delete_revisions()`: files shared with a revision that is kept stay.
#' Partial downloads of the repository that no live download holds (see [hub_cache_scan()]) are
#' removed too. A download that is running into the repository (in another R session, say)
#' ends well: its partial file, the repository's folders and refs stay, and only the files
#' cached so far go. A repository folder that [hub_cache_scan()] cannot read (a blob deleted by
#' hand) is deleted as it is.
#'
#' @param repo_id The repository id, as in the `repo_id` column of [hub_cache_scan()].
#' @param revision `NULL` to delete every cached revision (the whole repository folder), or one
#'   revision: a ref such as `"main"`, a commit hash, or its first 7 or more characters.
#' @param repo_type `"model"`, `"dataset"` or `"space"`.
#' @return The number of bytes freed, invisibly.
#' @family cache
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' hub_download("gpt2", "config.json")
#' hub_download("bert-base-uncased", "config.json")
#' hub_cache_delete("gpt2")
#' hub_cache_delete("bert-base-uncased", revision = "main")
hub_cache_delete <- function(repo_id, revision = NULL, repo_type = "model") {
  hub_check_repo(repo_id, if (is.null(revision)) "main" else revision, repo_type)
  res <- py_call("cache", "delete", repo_id, revision = revision, repo_type = repo_type,
                 env = hf_env())
  invisible(as.numeric(res$freed))
}
