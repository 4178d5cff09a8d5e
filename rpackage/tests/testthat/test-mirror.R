test_that("hub_mirror_start() serves a published folder and hub_mirror_stop() ends it", {
  store <- withr::local_tempdir()
  src <- withr::local_tempdir()
  writeLines('{"model_type": "bert"}', file.path(src, "config.json"))
  hub_mirror_publish(store, "mtest/r-start", src)
  token <- "hf_MirrorHandleToken0123456789"
  withr::local_envvar(HF_TOKEN = token)
  mirror <- hub_mirror_start(store)
  on.exit(hub_mirror_stop(mirror), add = TRUE)
  expect_s3_class(mirror, "hfbridge_mirror")
  expect_length(grepRaw(token, serialize(mirror, NULL), fixed = TRUE), 0)  # processx keeps no env
  expect_match(mirror$url, "^http://127\\.0\\.0\\.1:[0-9]+$")
  expect_true(mirror$process$is_alive())
  got <- readLines(paste0(mirror$url, "/mtest/r-start/resolve/main/config.json"), warn = FALSE)
  expect_identical(got, '{"model_type": "bert"}')
  stats <- hub_mirror_stats(mirror, reset = TRUE)
  expect_identical(stats$by_path[["GET /mtest/r-start/resolve/main/config.json"]], 1L)
  expect_identical(hub_mirror_stats(mirror)$total, 0L)
  hub_mirror_stop(mirror)
  expect_false(mirror$process$is_alive())
})

test_that("the print method shows the url, the root and the state", {
  mirror <- hub_mirror_start(withr::local_tempdir())
  out <- capture.output(print(mirror))
  expect_match(out[1], "<hfbridge_mirror>", fixed = TRUE)
  expect_true(any(grepl(mirror$url, out, fixed = TRUE)))
  expect_true(any(grepl("running (pid", out, fixed = TRUE)))
  # read back in another session: it says so, and refuses to "stop" what it does not own
  rds <- tempfile(fileext = ".rds")
  saveRDS(mirror, rds)
  other <- callr::r(function(rds) {
    library(hfbridge)
    m <- readRDS(rds)
    c(print = paste(utils::capture.output(print(m)), collapse = "\n"),
      stop = tryCatch(hub_mirror_stop(m), error = function(e) class(e)[1]))
  }, list(rds))
  expect_match(other[["print"]], "started by another R session")
  expect_identical(other[["stop"]], "hfbridge_error_invalid_argument")
  expect_true(mirror$process$is_alive())
  hub_mirror_stop(mirror)
  expect_true(any(grepl("stopped", capture.output(print(mirror)), fixed = TRUE)))
  expect_error(hub_mirror_stats(mirror), "does not answer", class = "hfbridge_error_network")
})

test_that("a Python without pybridge or a missing Python gives classed errors", {
  expect_error(hub_mirror_start(withr::local_tempdir(), python = "/no/such/python"),
               class = "hfbridge_error_python_environment")
  python3 <- Sys.which("python3")
  skip_if(!nzchar(python3), "no system python3")
  plain <- system2(python3, c("-c", shQuote("import pybridge")), stdout = FALSE, stderr = FALSE)
  skip_if(plain == 0, "the system python3 has pybridge")
  expect_error(hub_mirror_start(withr::local_tempdir(), python = python3, timeout = 20),
               class = "hfbridge_error_python_environment")
})

test_that("a port already in use gives a network error", {
  first <- hub_mirror_start(withr::local_tempdir())
  on.exit(hub_mirror_stop(first), add = TRUE)
  port <- as.integer(sub(".*:", "", first$url))
  expect_error(hub_mirror_start(withr::local_tempdir(), port = port),
               class = "hfbridge_error_network")
})

test_that("arguments are checked before anything starts", {
  expect_error(hub_mirror_start(1), class = "hfbridge_error_invalid_argument")
  expect_error(hub_mirror_start("x", port = -1), class = "hfbridge_error_invalid_argument")
  expect_error(hub_mirror_stop("x"), class = "hfbridge_error_invalid_argument")
  expect_error(hub_mirror_stop(structure(list(), class = "hfbridge_mirror")),
               class = "hfbridge_error_invalid_argument")
  for (log in list(NA, "", tempdir(), file.path(tempdir(), "no", "such", "x.log"))) {
    expect_error(hub_mirror_start(withr::local_tempdir(), log = log),
                 class = "hfbridge_error_invalid_argument")
  }
  for (host in list("a\nb", strrep("a", 1e4), "")) {
    expect_error(hub_mirror_start(withr::local_tempdir(), host = host),
                 class = "hfbridge_error_invalid_argument")
  }
  expect_error(hub_mirror_publish(tempdir(), "a/b/c", tempdir()),
               class = "hfbridge_error_invalid_argument")
})

test_that("local_hub() points HF_ENDPOINT at one shared mirror and gives a fresh HF_HOME", {
  Sys.setenv(HF_TOKEN = "hf_shouldbeunset0000")
  on.exit(Sys.unsetenv("HF_TOKEN"), add = TRUE)
  url <- local_hub()
  expect_identical(Sys.getenv("HF_ENDPOINT"), url)
  expect_identical(Sys.getenv("HF_TOKEN"), "")
  expect_true(dir.exists(Sys.getenv("HF_HOME")))
  src <- withr::local_tempdir()
  writeLines("hello", file.path(src, "a.txt"))
  publish_repo("mtest/r-local-hub", src)
  got <- readLines(paste0(url, "/mtest/r-local-hub/resolve/main/a.txt"), warn = FALSE)
  expect_identical(got, "hello")
  mirror_config(list(gated = list("mtest/r-local-hub" = list("tok-a"))))
  con <- url(paste0(url, "/api/models/mtest/r-local-hub"))
  on.exit(close(con), add = TRUE)
  expect_error(suppressWarnings(readLines(con, warn = FALSE)))
})

test_that("the mirror's Python runs with the library path R inherited, not R's", {
  skip_if_not(file.exists("/proc/self/environ"))
  prefix <- hfbridge:::r_library_path_prefix()
  skip_if_not(nzchar(prefix), "this R adds no library folders")
  mirror <- hub_mirror_start(withr::local_tempdir())
  on.exit(hub_mirror_stop(mirror), add = TRUE)
  raw <- readBin(file.path("/proc", mirror$process$get_pid(), "environ"), "raw", 1e6)
  environ <- strsplit(rawToChar(replace(raw, raw == as.raw(0), as.raw(10))), "\n")[[1]]
  ld <- sub("^LD_LIBRARY_PATH=", "", grep("^LD_LIBRARY_PATH=", environ, value = TRUE))
  expect_false(any(startsWith(ld, prefix)))
  expected <- unname(hfbridge:::child_python_env()["LD_LIBRARY_PATH"])
  if (is.na(expected)) expect_length(ld, 0) else expect_identical(ld, expected)
})

test_that("hub_mirror_demo() points the session at the demo Hub; hub_mirror_stop() restores it", {
  names <- c("HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE")
  withr::local_envvar(HF_ENDPOINT = "https://hub.example.org", HF_HOME = NA,
                      HF_HUB_CACHE = "/nowhere/hub-cache", HUGGINGFACE_HUB_CACHE = NA,
                      HF_HUB_OFFLINE = "1")
  before <- Sys.getenv(names, unset = NA)
  demo <- hub_mirror_demo(file.path(withr::local_tempdir(), "store"))
  on.exit(if (demo$process$is_alive()) hub_mirror_stop(demo), add = TRUE)
  expect_s3_class(demo, "hfbridge_mirror")
  expect_identical(Sys.getenv("HF_ENDPOINT"), demo$url)
  home <- Sys.getenv("HF_HOME")
  expect_true(dir.exists(home))
  expect_length(list.files(home, all.files = TRUE, no.. = TRUE), 0)  # a fresh cache
  # the other ways to name the cache, or to go offline, are unset while the demo is in use
  expect_true(all(is.na(Sys.getenv(c("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE"),
                                   unset = NA))))
  path <- hub_download("gpt2", "config.json", quiet = TRUE)
  expect_true(startsWith(normalizePath(path), normalizePath(home)))
  expect_identical(jsonlite::read_json(path)$model_type, "gpt2")
  expect_true("tokenizer.json" %in% hub_list_files("hfbridge-tiny/chat"))
  expect_identical(hub_mirror_stats(demo)$by_status[["200"]] > 0, TRUE)
  hub_mirror_stop(demo)
  expect_false(demo$process$is_alive())
  expect_identical(Sys.getenv(names, unset = NA), before)  # set ones as they were, unset ones unset
})

test_that("hub_mirror_demo(use = FALSE) serves the demo store and leaves the environment alone", {
  withr::local_envvar(HF_ENDPOINT = NA, HF_HOME = NA)
  demo <- hub_mirror_demo(file.path(withr::local_tempdir(), "store"), use = FALSE)
  on.exit(hub_mirror_stop(demo), add = TRUE)
  expect_true(is.na(Sys.getenv("HF_ENDPOINT", unset = NA)))
  expect_true(is.na(Sys.getenv("HF_HOME", unset = NA)))
  got <- jsonlite::fromJSON(paste0(demo$url, "/api/models/gpt2"))
  expect_identical(got$id, "gpt2")
  expect_true(dir.exists(file.path(demo$root, "datasets", "imdb")))
  hub_mirror_stop(demo)
  expect_true(is.na(Sys.getenv("HF_ENDPOINT", unset = NA)))
})
