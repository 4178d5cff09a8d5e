# Kill tests (issue 27): the local server killed with SIGKILL in the middle of a stream that R
# is reading, and a future worker killed in the middle of a chunk. The R session lives through
# both, and what comes after equals a run that was never interrupted.

test_that("a server killed mid-stream gives a classed error; a new one serves the same cache", {
  local_hub()
  # The chat model's slow copy (the same replies at a real model's pace): the server is still
  # generating when it is killed after its first chunk.
  slow <- task_model_fixtures()$ids$chat_slow
  models <- c(chat = slow)
  question <- "The food was excellent."
  srv <- hf_serve(models, max_tokens = 32L, timeout = 300)
  on.exit(hf_serve_stop(srv), add = TRUE)
  chat <- hf_chat(slow, endpoint = srv, max_tokens = 32)
  chunks <- character()
  kill_after_first <- function(chunk) {
    chunks <<- c(chunks, chunk)
    if (length(chunks) == 1L) {
      srv$process$signal(tools::SIGKILL)
      srv$process$wait(10000)
    }
  }
  err <- tryCatch(chat$stream(question, callback = kill_after_first), error = identity)
  expect_false(srv$process$is_alive())
  expect_s3_class(err, "hfbridge_error_network")
  expect_identical(err$endpoint, paste0(srv$url, "/v1"))
  expect_match(conditionMessage(err), paste0("The stream from ", srv$url, "/v1 broke after 1"),
               fixed = TRUE)
  expect_length(chunks, 1L)
  expect_identical(nrow(chat$get_turns()), 0L)  # the broken reply is not kept

  # This session goes on: a new server on the same cache (offline: from what the first one
  # cached) answers as the model run here does.
  again <- hf_serve(models, offline = TRUE, max_tokens = 32L, timeout = 300)
  on.exit(hf_serve_stop(again), add = TRUE)
  expect_identical(again$models$revision, srv$models$revision)
  reply <- hf_chat(slow, endpoint = again, max_tokens = 8)$chat(question)
  local <- hf_chat(slow, max_tokens = 8)$chat(question)
  expect_identical(attr(reply, "endpoint"), paste0(again$url, "/v1"))
  expect_identical(as.character(unclass(reply)), as.character(unclass(local)))
  expect_identical(substr(as.character(unclass(reply)), 1L, nchar(chunks)), chunks)
})

test_that("a worker killed mid-chunk is replaced: the retry finishes, partial work is dropped", {
  skip_if_not_installed("future")
  local_hub()
  folders <- hfbridge:::pybridge_module("fixtures.task_models")$ensure(names = list("bert"))
  publish_repo("rkill/bert", folders$bert)
  texts <- paste(rep(c("The cat sat on the mat.", "Deep learning is powerful.",
                       "Alice lives in Berlin and works for Acme.", "I hate this boring film."),
                     6), rep(c("", "Again.", "Once more, longer."), each = 8))
  # The same chunks in this process, and the whole at once: what the killed run must give.
  old <- future::plan(future::sequential)
  on.exit(future::plan(old), add = TRUE)
  want <- embed_text(texts, "rkill/bert", batch_size = 4, chunk_size = 8, quiet = TRUE)
  whole <- embed_text(texts, "rkill/bert", batch_size = 4, quiet = TRUE)
  kill <- tempfile("kill-chunk-")
  withr::local_envvar(HFBRIDGE_TEST_KILL_CHUNK = kill)  # workers inherit it when they start
  future::plan(future::multisession, workers = 2)
  writeLines("2 mid", kill)  # chunk 2's worker dies as its model starts on the second batch
  got <- embed_text(texts, "rkill/bert", batch_size = 4, chunk_size = 8, parallel = TRUE,
                    retry = 1, quiet = TRUE)
  expect_false(file.exists(kill))
  expect_identical(readLines(paste0(kill, ".killed"), warn = FALSE), "killed in batch 2")
  expect_identical(got, want)
  expect_equal(got, whole, tolerance = 1e-6)
  # Without a retry, the same kill fails the run with the chunk named.
  writeLines("3 mid", kill)
  err <- tryCatch(embed_text(texts, "rkill/bert", batch_size = 4, chunk_size = 8,
                             parallel = TRUE, quiet = TRUE), error = identity)
  expect_s3_class(err, "hfbridge_error_chunk_failed")
  expect_identical(err$chunk, 3L)
  expect_identical(err$positions, c(17L, 24L))
})
