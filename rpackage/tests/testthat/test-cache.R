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
             revisions = vapply(repos, function(r) {
               length(reticulate::import_builtins()$list(r$revisions))
             }, 0L),
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
  expect_error(hub_cache_delete(tiny, repo_type = "dataset"),
               class = "hfbridge_error_repo_not_found")
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

test_that("a cache written by hfhub (refs with a trailing newline) is read offline and scanned", {
  local_hub()
  hub_test_repo(tiny)
  path <- hub_download(tiny, "config.json", quiet = TRUE)
  ref <- file.path(Sys.getenv("HF_HOME"), "hub", "models--rhubcache--tiny", "refs", "main")
  commit <- readLines(ref, warn = FALSE)
  writeLines(commit, ref)  # exactly what hfhub's hub_download() leaves
  withr::local_envvar(HF_HUB_OFFLINE = "1")
  hub_mirror_requests(reset = TRUE)
  expect_identical(hub_download(tiny, "config.json"), path)
  writeLines(commit, ref)
  expect_silent(scan <- hub_cache_scan())
  expect_identical(scan$repo_id, tiny)
  expect_identical(scan$revisions, paste0("main@", commit))
  expect_identical(attr(scan, "warnings"), character())
  expect_identical(hub_mirror_requests()$total, 0L)
})

test_that("hub_cache_scan says which folders scan_cache_dir could not read", {
  local_hub()
  hub_test_repo(tiny)
  hub_download(tiny, "config.json", quiet = TRUE)
  cache_dir <- file.path(Sys.getenv("HF_HOME"), "hub")
  dir.create(file.path(cache_dir, "models--rhubcache--broken", "refs"), recursive = TRUE)
  expect_message(scan <- hub_cache_scan(), class = "hfbridge_message_cache_scan")
  expect_identical(scan$repo_id, tiny)
  ref <- reticulate::import("huggingface_hub")$scan_cache_dir(cache_dir)$warnings
  expect_identical(attr(scan, "warnings"), vapply(ref, function(w) reticulate::py_str(w), ""))
  expect_match(attr(scan, "warnings"), "models--rhubcache--broken")
  msg <- tryCatch(hub_cache_scan(), message = function(m) m)
  expect_match(conditionMessage(msg), "models--rhubcache--broken", fixed = TRUE)
})

test_that("a download killed mid-way is reported, and the next download removes its leftover", {
  local_hub()
  src <- hub_test_repo(tiny)
  hub_download(tiny, "config.json", quiet = TRUE)
  mirror_config(list(faults = list(list(path = paste0(tiny, "/weights.bin"), kind = "delay",
                                        seconds = 120, method = "GET"))))
  blobs <- file.path(Sys.getenv("HF_HOME"), "hub", "models--rhubcache--tiny", "blobs")
  code <- sprintf("from pybridge import hub; hub.download('%s', 'weights.bin', quiet=True)", tiny)
  python <- Sys.getenv("RETICULATE_PYTHON", reticulate::py_config()$python)
  download <- processx::process$new(python, c("-c", code), env = hfbridge:::child_python_env())
  deadline <- Sys.time() + 60
  while (!length(partial <- list.files(blobs, "[.]incomplete$", full.names = TRUE)) &&
         download$is_alive() && Sys.time() < deadline) Sys.sleep(0.05)
  download$kill()
  expect_length(partial, 1)
  expect_message(scan <- hub_cache_scan(), "partial download",
                 class = "hfbridge_message_cache_scan")
  found <- attr(scan, "incomplete")
  expect_identical(found$path, partial)
  expect_identical(found$repo_id, tiny)
  expect_false(found$in_use)
  path <- hub_download(tiny, "weights.bin", quiet = TRUE)  # the delay was used up
  expect_identical(readBin(path, "raw", 20000),
                   readBin(file.path(src, "weights.bin"), "raw", 20000))
  expect_false(file.exists(partial))
  expect_silent(scan <- hub_cache_scan())
  expect_identical(nrow(attr(scan, "incomplete")), 0L)
})
