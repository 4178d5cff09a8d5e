# hub_cache_scan() and hub_cache_delete(), compared with huggingface_hub's scan_cache_dir().

tiny <- "rhubcache/tiny"

scan_reference <- function() {
  cache_dir <- file.path(Sys.getenv("HF_HOME"), "hub")
  repos <- reticulate::import("huggingface_hub")$scan_cache_dir(cache_dir)$repos
  repos <- reticulate::import_builtins()$list(repos)
  ids <- vapply(repos, function(r) r$repo_id, "")
  data.frame(repo_id = ids,
             size_on_disk = vapply(repos, function(r) as.numeric(r$size_on_disk), 0),
             nb_files = vapply(repos, function(r) as.integer(r$nb_files), 0L),
             revisions = vapply(repos, function(r) length(reticulate::import_builtins()$list(r$revisions)), 0L),
             stringsAsFactors = FALSE)[order(ids), ]
}

test_that("an empty or missing cache scans to an empty data frame", {
  withr::local_envvar(HF_HOME = tempfile("no-hf-home-"), HF_HUB_CACHE = NA)
  scan <- hub_cache_scan()
  expect_s3_class(scan, "data.frame")
  expect_identical(nrow(scan), 0L)
  expect_identical(names(scan), c("repo_id", "repo_type", "revisions", "size_on_disk",
                                  "nb_files", "last_accessed", "path"))
})

test_that("hub_cache_scan agrees with scan_cache_dir", {
  local_hub()
  hub_test_repo(tiny)
  repo <- "rhubtest/versions"
  hub_test_git_repo(repo)
  hub_download(tiny, "config.json", quiet = TRUE)
  hub_snapshot(tiny, allow_patterns = "*.txt", quiet = TRUE)
  hub_download(repo, "config.json", revision = "v1", quiet = TRUE)
  hub_download(repo, "config.json", quiet = TRUE)
  scan <- hub_cache_scan()
  ref <- scan_reference()
  scan <- scan[order(scan$repo_id), ]
  expect_identical(scan$repo_id, ref$repo_id)
  expect_identical(scan$size_on_disk, ref$size_on_disk)
  expect_identical(scan$nb_files, ref$nb_files)
  expect_identical(lengths(strsplit(scan$revisions, "; ", fixed = TRUE)), ref$revisions)
  expect_s3_class(scan$last_accessed, "POSIXct")
  expect_true(all(abs(as.numeric(Sys.time()) - as.numeric(scan$last_accessed)) < 3600))
  expect_true(all(dir.exists(scan$path)))
  expect_identical(attr(scan, "cache_dir"), file.path(Sys.getenv("HF_HOME"), "hub"))
  expect_match(scan$revisions[scan$repo_id == repo], "main@[0-9a-f]{40}")
  expect_match(scan$revisions[scan$repo_id == repo], "v1@[0-9a-f]{40}")
})

test_that("hub_cache_delete removes one revision or the whole repo", {
  local_hub()
  hub_test_repo(tiny)
  repo <- "rhubtest/versions"
  hub_test_git_repo(repo)
  hub_download(tiny, "config.json", quiet = TRUE)
  hub_download(repo, "config.json", revision = "v1", quiet = TRUE)
  hub_download(repo, "config.json", quiet = TRUE)
  freed <- hub_cache_delete(repo, revision = "v1")
  expect_gt(freed, 0)
  ref <- scan_reference()
  expect_identical(ref$revisions[ref$repo_id == repo], 1L)
  sha <- hub_repo_info(repo)$sha
  hub_cache_delete(repo, revision = substr(sha, 1, 10))
  expect_false(repo %in% hub_cache_scan()$repo_id)
  expect_invisible(hub_cache_delete(tiny))
  expect_identical(nrow(hub_cache_scan()), 0L)
  expect_error(hub_cache_delete(tiny), class = "hfbridge_error_repo_not_found")
  hub_download(tiny, "config.json", quiet = TRUE)
  err <- tryCatch(hub_cache_delete(tiny, revision = "v7"), error = function(e) e)
  expect_s3_class(err, "hfbridge_error_revision_not_found")
  expect_identical(err$revision, "v7")
  expect_error(hub_cache_delete(tiny, repo_type = "dataset"), class = "hfbridge_error_repo_not_found")
})

test_that("a file deleted from R is downloaded again; Python sees the same cache", {
  local_hub()
  hub_test_repo(tiny)
  path <- hub_download(tiny, "vocab.txt", quiet = TRUE)
  hub_cache_delete(tiny)
  expect_false(file.exists(path))
  code <- sprintf("import huggingface_hub as h; print(len(h.scan_cache_dir().repos))")
  expect_identical(utils::tail(hub_test_python(code), 1), "0")
  expect_identical(hub_download(tiny, "vocab.txt", quiet = TRUE), path)
  expect_identical(utils::tail(hub_test_python(code), 1), "1")
})
