# Every failure of the hub verbs arrives as a classed condition with its fields.

tiny <- "rhuberr/tiny"

test_that("bad arguments are refused in R, before Python is asked", {
  bad <- list(
    quote(hub_download("", "config.json")),
    quote(hub_download(NA_character_, "config.json")),
    quote(hub_download(c("a", "b"), "config.json")),
    quote(hub_download(42, "config.json")),
    quote(hub_download(NULL, "config.json")),
    quote(hub_download("org/name/extra", "config.json")),
    quote(hub_download("org/../name", "config.json")),
    quote(hub_download("org--name", "config.json")),
    quote(hub_download("gpt2", "../secrets.txt")),
    quote(hub_download("gpt2", "/etc/passwd")),
    quote(hub_download("gpt2", "")),
    quote(hub_download("gpt2", NA_character_)),
    quote(hub_download("gpt2", c("a.json", "b.json"))),
    quote(hub_download("gpt2", "config.json", revision = "")),
    quote(hub_download("gpt2", "config.json", revision = NA)),
    quote(hub_download("gpt2", "config.json", repo_type = "modle")),
    quote(hub_download("gpt2", "config.json", local_files_only = NA)),
    quote(hub_download("gpt2", "config.json", force_download = "yes")),
    quote(hub_download("gpt2", "config.json", quiet = c(TRUE, FALSE))),
    quote(hub_download("gpt2", "config.json", token = 123)),
    quote(hub_snapshot("gpt2", allow_patterns = NA_character_)),
    quote(hub_snapshot("gpt2", ignore_patterns = 1:3)),
    quote(hub_snapshot("gpt2", allow_patterns = "")),
    quote(hub_snapshot(TRUE)),
    quote(hub_load(list())),
    quote(hub_load(list(42))),
    quote(hub_load(list(repo_id = "gpt2", allow_patterns = NA_character_))),
    quote(hub_repo_info("gpt2", repo_type = c("model", "dataset"))),
    quote(hub_list_files(" ")),
    quote(hub_file_exists("gpt2", "a/../../b")),
    quote(hub_cache_delete("gpt2", revision = "")),
    quote(hub_cache_delete(1))
  )
  expect_gte(length(bad), 15)
  for (call in bad) {
    err <- tryCatch(eval(call), error = function(e) e)
    expect_s3_class(err, "hfbridge_error_invalid_argument")
    expect_true(nzchar(err$argument), label = deparse(call))
    expect_match(conditionMessage(err), "must|not a valid", label = deparse(call))
  }
})

test_that("the invalid_argument field names the argument", {
  err <- tryCatch(hub_download("gpt2", "../x"), error = function(e) e)
  expect_identical(err$argument, "filename")
  expect_identical(err$filename, "../x")
  err <- tryCatch(hub_download(42, "config.json"), error = function(e) e)
  expect_identical(err$argument, "repo_id")
  expect_match(conditionMessage(err), "not the numeric 42")
})

test_that("an unknown repo is repo_not_found, with the seed's tryCatch", {
  local_hub()
  msg <- NULL
  err <- NULL
  tryCatch({
    path <- hub_download("nonexistent/model", "file.bin")
  }, error = function(e) {
    msg <<- conditionMessage(e)
    err <<- e
  })
  expect_s3_class(err, "hfbridge_error_repo_not_found")
  expect_s3_class(err, "hfbridge_error")
  expect_identical(err$repo_id, "nonexistent/model")
  expect_identical(err$filename, "file.bin")
  expect_identical(err$revision, "main")
  expect_match(msg, "check the repo id", ignore.case = TRUE)
  expect_error(hub_repo_info("nonexistent/model"), class = "hfbridge_error_repo_not_found")
  expect_error(hub_snapshot("nonexistent/model"), class = "hfbridge_error_repo_not_found")
})

test_that("unknown revisions and files are revision_not_found and entry_not_found", {
  local_hub()
  hub_test_repo(tiny)
  err <- tryCatch(hub_download(tiny, "config.json", revision = "v9"), error = function(e) e)
  expect_s3_class(err, "hfbridge_error_revision_not_found")
  expect_identical(err$revision, "v9")
  expect_error(hub_snapshot(tiny, revision = "v9"), class = "hfbridge_error_revision_not_found")
  # "." and ".." would reach the URL, where they name the main branch
  for (revision in c(".", "..", "refs/../main", "a//b")) {
    expect_error(hub_snapshot(tiny, revision = revision), class = "hfbridge_error_invalid_argument")
    expect_error(hub_list_files(tiny, revision = revision),
                 class = "hfbridge_error_invalid_argument")
  }
  expect_error(tokenizer_from_pretrained(tiny, revision = ".."),
               class = "hfbridge_error_invalid_argument")
  err <- tryCatch(hub_download(tiny, "nope.bin"), error = function(e) e)
  expect_s3_class(err, "hfbridge_error_entry_not_found")
  expect_identical(err$filename, "nope.bin")
  expect_match(conditionMessage(err), "hub_list_files")
})

test_that("a gated repo is gated; a token the Hub does not know is auth", {
  local_hub()
  repo <- "rhuberr/gated"
  publish_repo(repo, hub_test_folder())
  granted <- "hf_rhuberrGranted0123456789"
  other <- "hf_rhuberrOther0123456789"
  mirror_config(list(gated = setNames(list(list(granted)), repo), tokens = list(other)))
  err <- tryCatch(hub_download(repo, "config.json"), error = function(e) e)
  expect_s3_class(err, "hfbridge_error_gated")
  expect_identical(err$repo_id, repo)
  expect_match(conditionMessage(err), "HF_TOKEN")
  withr::local_envvar(HF_TOKEN = other)
  expect_error(hub_download(repo, "config.json"), class = "hfbridge_error_gated")
  err <- tryCatch(hub_download(repo, "config.json", token = "hf_rhuberrUnknown0123456789"),
                  error = function(e) e)
  expect_s3_class(err, "hfbridge_error_auth")
  expect_false(grepl("rhuberrUnknown", conditionMessage(err)))
  withr::local_envvar(HF_TOKEN = granted)
  expect_true(file.exists(hub_download(repo, "config.json")))
  expect_error(hub_file_exists(repo, "config.json", token = "hf_rhuberrUnknown0123456789"),
               class = "hfbridge_error_auth")
})

test_that("the token file is read when HF_TOKEN is unset", {
  local_hub()
  repo <- "rhuberr/gated-file"
  publish_repo(repo, hub_test_folder())
  granted <- "hf_rhuberrFileToken0123456789"
  mirror_config(list(gated = setNames(list(list(granted)), repo)))
  expect_error(hub_download(repo, "config.json"), class = "hfbridge_error_gated")
  writeLines(granted, file.path(Sys.getenv("HF_HOME"), "token"))
  expect_true(file.exists(hub_download(repo, "config.json")))
})

test_that("offline without a cached copy is offline_not_cached", {
  local_hub()
  hub_test_repo(tiny)
  err <- tryCatch(hub_download(tiny, "config.json", local_files_only = TRUE),
                  error = function(e) e)
  expect_s3_class(err, "hfbridge_error_offline_not_cached")
  expect_identical(err$filename, "config.json")
  withr::local_envvar(HF_HUB_OFFLINE = "1")
  expect_error(hub_snapshot(tiny), class = "hfbridge_error_offline_not_cached")
  expect_error(hub_repo_info(tiny), class = "hfbridge_error_offline_not_cached")
  expect_error(hub_download(tiny, "config.json", force_download = TRUE),
               class = "hfbridge_error_invalid_argument")
})

test_that("a cache folder that cannot be made is storage, and says what to do", {
  local_hub()
  hub_test_repo(tiny)
  blocker <- tempfile("not-a-folder-")
  writeLines("a file", blocker)
  withr::defer(unlink(blocker))
  withr::local_envvar(HF_HOME = file.path(blocker, "hf"))
  err <- tryCatch(hub_download(tiny, "config.json"), error = function(e) e)
  expect_s3_class(err, "hfbridge_error_storage")
  expect_identical(err$path, file.path(blocker, "hf", "hub"))
  expect_identical(err$repo_id, tiny)
  expect_match(conditionMessage(err), "not a folder.*HF_HOME")
  expect_error(tokenizer_from_pretrained(tiny), class = "hfbridge_error_storage")
  expect_identical(readLines(blocker), "a file")
})

test_that("a Hub that keeps failing is network, after retries", {
  local_hub()
  hub_test_repo(tiny)
  mirror_config(list(faults = list(list(path = paste0("/api/models/", tiny, "*"),
                                        kind = "status", status = 503L, times = -1L))))
  hub_mirror_requests(reset = TRUE)
  err <- tryCatch(hub_repo_info(tiny), error = function(e) e)
  expect_s3_class(err, "hfbridge_error_network")
  expect_identical(err$repo_id, tiny)
  expect_match(conditionMessage(err), "HF_HUB_OFFLINE")
  expect_identical(hub_mirror_requests()$by_status[["503"]], 3L)
})

test_that("a 5xx on a download is retried, and a dead endpoint is network", {
  local_hub()
  src <- hub_test_repo(tiny)
  mirror_config(list(faults = list(list(path = paste0(tiny, "/weights.bin"), kind = "status",
                                        status = 503L, times = 2L, method = "GET"))))
  path <- hub_download(tiny, "weights.bin", quiet = TRUE)
  expect_identical(readBin(path, "raw", 20000),
                   readBin(file.path(src, "weights.bin"), "raw", 20000))
  withr::local_envvar(HF_ENDPOINT = "http://127.0.0.1:9")
  expect_error(hub_repo_info(tiny), class = "hfbridge_error_network")
  # huggingface_hub's "Force download failed due to the above error" is that error
  expect_error(hub_download(tiny, "weights.bin", force_download = TRUE, quiet = TRUE),
               class = "hfbridge_error_network")
})

test_that("a connection closed mid-download is resumed", {
  local_hub()
  src <- hub_test_repo(tiny)
  mirror_config(list(faults = list(list(path = paste0(tiny, "/weights.bin"), kind = "close",
                                        times = 1L))))
  path <- hub_download(tiny, "weights.bin", quiet = TRUE)
  expect_identical(readBin(path, "raw", 20000),
                   readBin(file.path(src, "weights.bin"), "raw", 20000))
})
