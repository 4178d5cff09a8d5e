# Chunked runs on future workers (R/parallel.R): multisession and localhost cluster workers give
# what one process gives, load the model offline by its commit (no Hub request), and a worker
# killed mid-run gives hfbridge_error_chunk_failed, then a retry succeeds. Each plan starts two
# R workers with their own Python and torch, so the tests share plans where they can.

skip_if_not_installed("future")
skip_if_not_installed("parallelly")

test_that("library(hfbridge) loads neither future nor progressr, and starts no Python", {
  loaded <- callr::r(function() {
    library(hfbridge)
    c(future = isNamespaceLoaded("future"), progressr = isNamespaceLoaded("progressr"),
      python = reticulate::py_available(initialize = FALSE))
  })
  expect_identical(loaded, c(future = FALSE, progressr = FALSE, python = FALSE))
})

parallel_fixtures <- function() {
  tm <- hfbridge:::pybridge_module("fixtures.task_models")
  folders <- tm$ensure(names = list("bert", "sentiment"))
  publish_repo("rparallel/bert", folders$bert)
  publish_repo("rparallel/sentiment", folders$sentiment)
  invisible(folders)
}

local_plan <- function(..., env = parent.frame()) {
  old <- future::plan(...)
  withr::defer(future::plan(old), envir = env)
}

parallel_texts <- c("This course is excellent.", "The explanation was very confusing.",
                    "Alice lives in Berlin and works for Acme.", "Hello world, this is a test.",
                    "The cat sat on the mat.", "Deep learning is powerful.",
                    "R users like data frames, matrices and vectors.", "I hate this boring film.",
                    "The weather is lovely today.", "What a great and helpful explanation.",
                    "Bob met Carol in London last year.")
parallel_texts <- paste(rep(parallel_texts, 3), rep(c("", "Again.", "Once more, longer."),
                                                     each = length(parallel_texts)))

# One process, no plan involved: the reference for every parallel run.
single_process <- function() {
  tok <- tokenizer_from_pretrained("rparallel/bert")
  list(embed = embed_text(parallel_texts, "rparallel/bert", batch_size = 4),
       classify = pipeline("text-classification", "rparallel/sentiment",
                           batch_size = 4)(parallel_texts),
       ids = tok$encode_ids(parallel_texts),
       matrix = tok$encode_matrix(parallel_texts))
}

chunked <- function(...) {
  tok <- tokenizer_from_pretrained("rparallel/bert")
  classifier <- pipeline("text-classification", "rparallel/sentiment", batch_size = 4)
  list(embed = embed_text(parallel_texts, "rparallel/bert", batch_size = 4, ...),
       classify = classifier(parallel_texts, ...),
       ids = tok$encode_ids(parallel_texts, ...),
       matrix = tok$encode_matrix(parallel_texts, ...))
}

expect_same_results <- function(got, want) {
  expect_equal(got$embed, want$embed, tolerance = 1e-6)
  expect_identical(got$classify[c("text_id", "text", "label")],
                   want$classify[c("text_id", "text", "label")])
  expect_equal(got$classify$score, want$classify$score, tolerance = 1e-6)
  expect_identical(got$ids, want$ids)
  expect_identical(got$matrix, want$matrix)
}

test_that("multisession and localhost cluster workers give the single-process results", {
  local_hub()
  parallel_fixtures()
  want <- single_process()
  local_plan(future::sequential)
  sequential <- chunked(chunk_size = 7)
  expect_same_results(sequential, want)

  for (plan in list(list(future::multisession, workers = 2),
                    list(future::cluster, workers = c("localhost", "localhost")))) {
    do.call(local_plan, plan)
    got <- chunked(parallel = TRUE, chunk_size = 7)
    expect_same_results(got, want)
    # The same chunks in workers give the very numbers of the same chunks in this process.
    expect_identical(got, sequential)
    expect_identical(chunked(parallel = TRUE)$ids, want$ids)  # default chunk size
  }
})

test_that("workers load the pinned commit offline: no Hub request from them", {
  local_hub()
  parallel_fixtures()
  commit <- hub_repo_info("rparallel/bert")$sha
  # What the leader alone asks, on a fresh cache: resolve "main", cache the model.
  repo <- "rparallel/bert"
  hub_mirror_requests(reset = TRUE)
  leader <- hfbridge:::parallel_pin(repo, "main", FALSE, NULL)
  leader_requests <- hub_mirror_repo_requests(repo, reset = TRUE)
  expect_identical(leader$revision, commit)
  expect_gt(leader_requests, 0)
  # Another fresh cache and fresh workers: the whole run asks exactly what the leader asks.
  withr::local_envvar(HF_HOME = withr::local_tempdir())
  local_plan(future::multisession, workers = 2)
  got <- embed_text(parallel_texts, repo, batch_size = 4, parallel = TRUE, chunk_size = 5)
  expect_identical(hub_mirror_repo_requests(repo, reset = TRUE), leader_requests)
  # New workers, and the commit already cached: no request about the model, from anyone.
  local_plan(future::multisession, workers = 2)
  again <- embed_text(parallel_texts, repo, revision = commit, batch_size = 4, parallel = TRUE,
                      chunk_size = 5)
  seen <- names(hub_mirror_requests()$by_path)
  expect_identical(hub_mirror_repo_requests(repo), 0L, info = paste(seen, collapse = ", "))
  expect_identical(again, got)
})

test_that("a killed worker gives hfbridge_error_chunk_failed, and retry = 1 succeeds", {
  local_hub()
  parallel_fixtures()
  want <- embed_text(parallel_texts, "rparallel/bert", batch_size = 4, chunk_size = 7)
  kill <- tempfile("kill-chunk-")
  withr::local_envvar(HFBRIDGE_TEST_KILL_CHUNK = kill)  # workers inherit it when they start
  local_plan(future::multisession, workers = 2)
  writeLines("2", kill)
  err <- tryCatch(embed_text(parallel_texts, "rparallel/bert", batch_size = 4, chunk_size = 7),
                  error = function(e) e)
  expect_s3_class(err, "hfbridge_error_chunk_failed")
  expect_identical(err$chunk, 2L)
  expect_identical(err$positions, c(8L, 14L))
  expect_s3_class(err$cause, "FutureError")
  expect_match(conditionMessage(err), "Chunk 2 of 5 (inputs 8 to 14)", fixed = TRUE)
  expect_false(file.exists(kill))

  writeLines("3", kill)
  got <- embed_text(parallel_texts, "rparallel/bert", batch_size = 4, chunk_size = 7,
                    retry = 1)
  expect_false(file.exists(kill))
  expect_identical(got, want)
})

test_that("torch on a worker uses cores %/% workers threads, or the hfbridge.threads option", {
  local_plan(future::multicore, workers = 2)  # multicore starts no process until used
  expect_identical(hfbridge:::parallel_threads(),
                   max(1L, as.integer(parallelly::availableCores() %/% 2L)))
  withr::local_options(hfbridge.threads = 3)
  expect_identical(hfbridge:::parallel_threads(), 3L)
  withr::local_options(hfbridge.threads = NA)
  expect_identical(hfbridge:::parallel_threads(), NA_integer_)
  withr::local_options(hfbridge.threads = NULL)
  local_plan(future::sequential)
  expect_identical(hfbridge:::parallel_threads(), NA_integer_)

  local_plan(future::multisession, workers = 2)
  withr::local_options(hfbridge.threads = 1)
  torch_threads <- function(job, input) {
    hfbridge:::pybridge_module("models")$import_torch()$get_num_threads()
  }
  environment(torch_threads) <- globalenv()
  job <- list(worker = hfbridge:::parallel_worker_setup(offline = FALSE, torch = TRUE))
  got <- hfbridge:::parallel_run(torch_threads, job, list(1, 2), list(1L, 2L), 0L, TRUE)
  expect_identical(unlist(got), c(1L, 1L))
})

test_that("chunks of question answering, feature extraction and padded encodings join up", {
  local_plan(future::sequential)
  tm <- hfbridge:::pybridge_module("fixtures.task_models")
  folders <- tm$ensure(names = list("qa", "bert"))
  qa <- pipeline("question-answering", folders$qa)
  questions <- c("Where does Alice live?", "Who works for Acme?", "Which city?")
  context <- "Alice lives in Berlin and works for Acme."
  expect_identical(qa(question = questions, context = context, chunk_size = 2),
                   qa(question = questions, context = context))
  features <- pipeline("feature-extraction", folders$bert)
  expect_equal(features(parallel_texts[1:5], chunk_size = 2), features(parallel_texts[1:5]),
               tolerance = 1e-6)
  tok <- tokenizer_from_pretrained(folders$bert)
  tok$enable_padding(direction = "left", pad_id = 3L, pad_to_multiple_of = 4L)
  short <- c("a b c d e f g", "hello", "x y")
  expect_identical(tok$encode_ids(short, chunk_size = 1), tok$encode_ids(short))
  expect_identical(tok$encode_matrix(short, pairs = c("p", "q", "r"), chunk_size = 1),
                   tok$encode_matrix(short, pairs = c("p", "q", "r")))
  # No texts, no chunks: still one process's result (list(), 0 x 0 matrices), with no warning.
  expect_no_warning(ids <- tok$encode_ids(character(0), chunk_size = 5))
  expect_identical(ids, tok$encode_ids(character(0)))
  expect_no_warning(empty <- tok$encode_matrix(character(0), chunk_size = 5))
  expect_identical(empty, tok$encode_matrix(character(0)))
  expect_identical(dim(empty$ids), c(0L, 0L))
})

test_that("an error inside a chunk names the chunk; arguments are checked before any chunk", {
  local_hub()
  parallel_fixtures()
  local_plan(future::sequential)
  err <- tryCatch(embed_text(parallel_texts, "rparallel/bert", device = "nodevice",
                             chunk_size = 10, retry = 1), error = function(e) e)
  expect_s3_class(err, "hfbridge_error_chunk_failed")
  expect_identical(err$attempts, 2L)
  expect_s3_class(err$cause, "hfbridge_error_invalid_argument")
  expect_error(embed_text(c("a", NA), "rparallel/bert", parallel = TRUE),
               class = "hfbridge_error_invalid_argument")
  expect_error(embed_text("a", "rparallel/bert", chunk_size = 0),
               class = "hfbridge_error_invalid_argument")
  expect_error(embed_text("a", "rparallel/bert", parallel = NA),
               class = "hfbridge_error_invalid_argument")
})

test_that("chunks report progress through progressr", {
  skip_if_not_installed("progressr")
  local_hub()
  parallel_fixtures()
  local_plan(future::sequential)
  updates <- function(quiet) {
    steps <- 0L
    progressr::with_progress(
      withCallingHandlers(
        embed_text(parallel_texts, "rparallel/bert", chunk_size = 10, quiet = quiet),
        progression = function(c) if (identical(c$type, "update")) steps <<- steps + 1L),
      handlers = progressr::handler_void(), enable = TRUE)
    steps
  }
  expect_identical(updates(quiet = FALSE), 4L)  # four chunks
  expect_identical(updates(quiet = TRUE), 0L)
})

test_that("the Slurm template of the README parses with batchtools", {
  skip_if_not_installed("batchtools")
  template <- system.file("batchtools", "slurm.tmpl", package = "hfbridge")
  expect_true(nzchar(template))
  reg <- batchtools::makeRegistry(file.dir = NA, make.default = FALSE)
  batchtools::batchMap(identity, 1, reg = reg)
  jc <- batchtools::makeJobCollection(1, reg = reg,
                                      resources = list(ncpus = 4, memory = 8000, walltime = 3600))
  script <- batchtools::cfBrewTemplate(reg, batchtools::cfReadBrewTemplate(template), jc)
  lines <- readLines(script)
  expect_true(any(grepl("^#SBATCH --cpus-per-task=4$", lines)))
  expect_true(any(grepl("^#SBATCH --mem=8000M$", lines)))
  expect_true(any(grepl("^#SBATCH --time=60$", lines)))
  expect_false(any(grepl("^#SBATCH --partition|<%", lines)))
  expect_true(any(grepl("Rscript -e 'batchtools::doJobCollection", lines, fixed = TRUE)))
})
