# The hub verbs against the local mirror, compared with Python's huggingface_hub.

tiny <- "rhubtest/tiny"

test_that("hub_download returns the cached file, as huggingface_hub does", {
  local_hub()
  src <- hub_test_repo(tiny)
  path <- hub_download(repo_id = tiny, filename = "config.json")
  expect_identical(readLines(path), readLines(file.path(src, "config.json")))
  expect_identical(hub_download(tiny, "config.json", revision = "main"), path)
  expect_identical(hf_hub_download(tiny, filename = "config.json"), path)
  ref <- reticulate::import("huggingface_hub")$hf_hub_download(
    tiny, "config.json", endpoint = Sys.getenv("HF_ENDPOINT"),
    cache_dir = file.path(Sys.getenv("HF_HOME"), "hub"), token = FALSE)
  expect_identical(normalizePath(ref), normalizePath(path))
  expect_true(startsWith(path, file.path(Sys.getenv("HF_HOME"), "hub", "models--rhubtest--tiny")))
  sub <- hub_download(tiny, "sub/extra.json", quiet = TRUE)
  expect_true(endsWith(sub, "sub/extra.json"))
  bin <- hub_download(tiny, "weights.bin", quiet = TRUE)
  expect_identical(readBin(bin, "raw", 20000), readBin(file.path(src, "weights.bin"), "raw", 20000))
})

test_that("a pinned commit or offline makes no request once cached", {
  local_hub()
  hub_test_repo(tiny)
  path <- hub_download(tiny, "vocab.txt", quiet = TRUE)
  sha <- hub_repo_info(tiny)$sha
  hub_mirror_requests(reset = TRUE)
  expect_identical(hub_download(tiny, "vocab.txt", revision = sha), path)
  expect_identical(hub_download(tiny, "vocab.txt", local_files_only = TRUE), path)
  withr::local_envvar(HF_HUB_OFFLINE = "1")
  expect_identical(hub_download(tiny, "vocab.txt"), path)
  expect_identical(hub_mirror_requests()$total, 0L)
})

test_that("HF_HUB_OFFLINE set after Python started is honoured", {
  local_hub()
  hub_test_repo(tiny)
  withr::local_envvar(HF_HUB_OFFLINE = "1")
  hub_mirror_requests(reset = TRUE)
  expect_error(hub_snapshot(tiny), class = "hfbridge_error_offline_not_cached")
  expect_error(hub_download(tiny, "vocab.txt"), class = "hfbridge_error_offline_not_cached")
  expect_error(hub_file_exists(tiny, "vocab.txt"), class = "hfbridge_error_offline_not_cached")
  expect_identical(hub_mirror_requests()$total, 0L)
  withr::local_envvar(HF_HUB_OFFLINE = NA)
  hub_download(tiny, "config.json", quiet = TRUE)
  withr::local_envvar(HF_HUB_OFFLINE = "1")
  expect_true(hub_file_exists(tiny, "config.json"))
  expect_identical(hub_mirror_requests()$total, 2L)
})

test_that("HF_HUB_CACHE wins over HF_HOME", {
  local_hub()
  hub_test_repo(tiny)
  cache <- withr::local_tempdir()
  withr::local_envvar(HF_HUB_CACHE = cache)
  path <- hub_download(tiny, "config.json", quiet = TRUE)
  expect_true(startsWith(normalizePath(path), normalizePath(cache)))
})

test_that("HUGGINGFACE_HUB_CACHE set mid-session is the cache Python's huggingface_hub uses", {
  local_hub()
  hub_test_repo(tiny)
  legacy <- withr::local_tempdir()
  withr::local_envvar(HUGGINGFACE_HUB_CACHE = legacy)
  path <- hub_download(tiny, "config.json", quiet = TRUE)
  python_cache <- hub_test_python("import huggingface_hub.constants as c; print(c.HF_HUB_CACHE)")
  expect_identical(utils::tail(python_cache, 1), legacy)
  expect_true(startsWith(path, legacy))
  code <- sprintf("import huggingface_hub as h; print(h.hf_hub_download('%s', 'config.json'))",
                  tiny)
  expect_identical(utils::tail(hub_test_python(code, c(HF_HUB_OFFLINE = "1")), 1), path)
})

test_that("TRANSFORMERS_OFFLINE set mid-session sends no request, as in huggingface_hub", {
  local_hub()
  hub_test_repo(tiny)
  path <- hub_download(tiny, "config.json", quiet = TRUE)
  withr::local_envvar(TRANSFORMERS_OFFLINE = "1")
  offline <- hub_test_python("import huggingface_hub.constants as c; print(c.HF_HUB_OFFLINE)")
  expect_identical(utils::tail(offline, 1), "True")
  hub_mirror_requests(reset = TRUE)
  expect_identical(hub_download(tiny, "config.json"), path)
  expect_error(hub_download(tiny, "vocab.txt"), class = "hfbridge_error_offline_not_cached")
  expect_error(hub_list_files(tiny), class = "hfbridge_error_offline_not_cached")
  expect_identical(hub_mirror_requests()$total, 0L)
})

test_that("R passes on the variables pybridge reads", {
  names <- unlist(reticulate::import("pybridge.settings")$ENV_NAMES)
  expect_setequal(hfbridge:::hf_env_names, names)
})

test_that("hub_snapshot keeps what the patterns say, as snapshot_download does", {
  local_hub()
  hub_test_repo(tiny)
  hfh <- reticulate::import("huggingface_hub")
  cases <- list(list(NULL, NULL), list("*.json", NULL), list(c("*.json", "*.txt"), "sub/*"))
  for (i in seq_along(cases)) {
    allow <- cases[[i]][[1]]
    ignore <- cases[[i]][[2]]
    withr::local_envvar(HF_HOME = withr::local_tempdir())
    folder <- hub_snapshot(tiny, allow_patterns = allow, ignore_patterns = ignore, quiet = TRUE)
    ref <- hfh$snapshot_download(
      tiny, allow_patterns = if (is.null(allow)) NULL else as.list(allow),
      ignore_patterns = if (is.null(ignore)) NULL else as.list(ignore),
      endpoint = Sys.getenv("HF_ENDPOINT"), cache_dir = withr::local_tempdir(), token = FALSE)
    expect_identical(sort(list.files(folder, recursive = TRUE)),
                     sort(list.files(ref, recursive = TRUE)))
  }
  withr::local_envvar(HF_HOME = withr::local_tempdir())
  one <- hub_snapshot(tiny, allow_patterns = "vocab.txt", quiet = TRUE)
  expect_identical(list.files(one, recursive = TRUE), "vocab.txt")
})

test_that("the revision counts", {
  local_hub()
  repo <- "rhubtest/versions"
  hub_test_git_repo(repo)
  old <- hub_download(repo, "config.json", revision = "v1", quiet = TRUE)
  new <- hub_download(repo, "config.json", quiet = TRUE)
  expect_identical(jsonlite::fromJSON(old)$n, 1L)
  expect_identical(jsonlite::fromJSON(new)$n, 2L)
  expect_identical(list.files(hub_snapshot(repo, revision = "v1", quiet = TRUE)), "config.json")
  expect_identical(sort(list.files(hub_snapshot(repo, quiet = TRUE))), c("config.json", "new.txt"))
  expect_identical(hub_list_files(repo, revision = "v1"), "config.json")
  expect_false(hub_file_exists(repo, "new.txt", revision = "v1"))
  expect_true(hub_file_exists(repo, "new.txt"))
  expect_false(identical(hub_repo_info(repo, revision = "v1")$sha, hub_repo_info(repo)$sha))
})

test_that("hub_repo_info, hub_list_files and hub_file_exists match HfApi", {
  local_hub()
  hub_test_repo(tiny)
  api <- reticulate::import("huggingface_hub")$HfApi(endpoint = Sys.getenv("HF_ENDPOINT"),
                                                     token = FALSE)
  ref <- api$repo_info(tiny, files_metadata = TRUE)
  info <- hub_repo_info(tiny)
  expect_identical(info$id, ref$id)
  expect_identical(info$sha, ref$sha)
  expect_s3_class(info$files, "data.frame")
  expect_identical(info$files$path, vapply(ref$siblings, function(s) s$rfilename, ""))
  expect_equal(info$files$size, vapply(ref$siblings, function(s) as.numeric(s$size), 0))
  expect_identical(hub_list_files(tiny), as.character(unlist(api$list_repo_files(tiny))))
  for (f in c("config.json", "sub/extra.json", "missing.bin")) {
    expect_identical(hub_file_exists(tiny, f), api$file_exists(tiny, f))
  }
  expect_false(hub_file_exists("rhubtest/no-such-repo", "config.json"))
})

test_that("hub_file_exists downloads nothing", {
  local_hub()
  hub_test_repo(tiny)
  hub_mirror_requests(reset = TRUE)
  expect_true(hub_file_exists(tiny, "weights.bin"))
  expect_null(hub_mirror_requests()$by_method$GET)
  expect_length(list.files(Sys.getenv("HF_HOME"), pattern = "weights.bin", recursive = TRUE), 0)
})

test_that("hub_load takes Metaflow's three forms", {
  local_hub()
  hub_test_repo(tiny)
  one <- hub_load(tiny, quiet = TRUE)
  expect_identical(names(one), tiny)
  expect_true(file.exists(file.path(one[[1]], "weights.bin")))
  dir <- file.path(withr::local_tempdir(), "model_directory")
  pair <- hub_load(c(tiny, dir), quiet = TRUE)
  expect_identical(unname(pair), dir)
  expect_true(file.exists(file.path(dir, "config.json")))
  withr::local_envvar(HF_HOME = withr::local_tempdir())
  listed <- hub_load(list(repo_id = tiny, allow_patterns = c("*.json", "tokenizer.txt"),
                          repo_type = "model"), quiet = TRUE)
  expect_setequal(list.files(listed[[tiny]], recursive = TRUE),
                  c("config.json", "tokenizer.json", "sub/extra.json"))
  mixed <- hub_load(list(tiny, list(tiny, dir), list(repo_id = tiny, revision = "main",
                                                     ignore_patterns = "*.bin")), quiet = TRUE)
  expect_identical(names(mixed), rep(tiny, 3))
  expect_identical(mixed[[2]], dir)
  expect_identical(mixed[[1]], listed[[1]])
})

test_that("the cache is shared with Python's huggingface_hub, both ways", {
  local_hub()
  hub_test_repo(tiny)
  path <- hub_download(tiny, "vocab.txt", quiet = TRUE)
  code <- sprintf("import huggingface_hub as h; print(h.hf_hub_download('%s', 'vocab.txt'))", tiny)
  found <- hub_test_python(code, c(HF_HUB_OFFLINE = "1"))
  expect_identical(utils::tail(found, 1), path)

  code <- sprintf(paste0("import huggingface_hub as h; ",
                         "print(h.hf_hub_download('%s', 'tokenizer.json', token=False))"), tiny)
  fetched <- utils::tail(hub_test_python(code), 1)
  hub_mirror_requests(reset = TRUE)
  expect_identical(hub_download(tiny, "tokenizer.json", local_files_only = TRUE), fetched)
  expect_identical(hub_mirror_requests()$total, 0L)
})

test_that("a token is never printed", {
  local_hub()
  repo <- "rhubtest/gated-print"
  publish_repo(repo, hub_test_folder())
  secret <- "hf_rhubtestSecret0123456789abcdef"
  mirror_config(list(gated = setNames(list(list(secret)), repo)))
  out <- utils::capture.output(type = "output", {
    msgs <- utils::capture.output(type = "message", {
      path <- hub_download(repo, "config.json", token = secret)
      print(path)
      err <- tryCatch(hub_download(repo, "vocab.txt", token = paste0(secret, "x")),
                      error = function(e) e)
      print(err)
      print(unclass(err))
    })
  })
  expect_true(file.exists(path))
  expect_s3_class(err, "hfbridge_error_auth")
  all <- paste(c(out, msgs, conditionMessage(err)), collapse = "\n")
  expect_false(grepl(secret, all, fixed = TRUE))
  expect_false(grepl("rhubtestSecret", all, fixed = TRUE))
})
