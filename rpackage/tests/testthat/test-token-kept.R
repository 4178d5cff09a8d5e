# No object hfbridge returns keeps the token it was given, not even once saved with saveRDS()
# (issue #10, reliability case 7): pipelines, embeddings, tokenizers, safetensors handles and
# weights, hub results. The models are gated on the test mirror and only the secret opens them.

keep_secret <- "hf_keptSecret7bq2LmZx91"

keep_publish <- function() {
  folders <- hfbridge:::pybridge_module("fixtures.task_models")$ensure()
  repos <- c(sentiment = "token-kept/sentiment", bert = "token-kept/bert")
  for (name in names(repos)) publish_repo(repos[[name]], folders[[name]])
  gated <- stats::setNames(rep(list(list(keep_secret)), length(repos)), repos)
  mirror_config(list(gated = gated), env = parent.frame())
  as.list(repos)
}

# The bytes serialize() and saveRDS() write hold no secret.
expect_no_secret <- function(object, label) {
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path))
  saveRDS(object, path, compress = FALSE)
  for (bytes in list(serialize(object, NULL), readBin(path, "raw", file.size(path)))) {
    found <- grepRaw(keep_secret, bytes, fixed = TRUE)
    expect(length(found) == 0L, sprintf("%s keeps the token (byte %d)", label, found[1]))
  }
}

test_that("a pipeline made with a token keeps only what it needs, and not the token", {
  local_hub()
  repos <- keep_publish()
  pipeline_cache_clear()
  expect_error(pipeline("sentiment-analysis", repos$sentiment),
               class = "hfbridge_error_gated")
  p <- pipeline("sentiment-analysis", repos$sentiment, token = keep_secret, top_k = 2)
  expect_identical(ls(environment(p), all.names = TRUE), "spec")
  expect_no_secret(p, "pipeline")
  expect_identical(nrow(p("good")), 2L)
  expect_no_secret(p, "pipeline after a call")
  expect_no_secret(pipeline("feature-extraction", repos$bert, token = keep_secret),
                   "feature-extraction pipeline")
})

test_that("embeddings, tokenizers, safetensors and hub results keep no token", {
  local_hub()
  repos <- keep_publish()
  pipeline_cache_clear()
  objects <- list(
    embed_text = embed_text("good", repos$bert, token = keep_secret, quiet = TRUE),
    hidden_states = hidden_states("good", repos$bert, token = keep_secret, quiet = TRUE),
    tokenizer = tokenizer_from_pretrained(repos$bert, token = keep_secret),
    tokenizer_tok = tokenizer$from_pretrained(repos$bert, auth_token = keep_secret),
    safe_load_model = safe_load_model(repos$bert, token = keep_secret),
    safe_load_model_lazy = safe_load_model(repos$bert, lazy = TRUE, token = keep_secret),
    safe_open = safe_open(hub_download(repos$bert, "model.safetensors", token = keep_secret,
                                       quiet = TRUE)),
    hub_download = hub_download(repos$bert, "config.json", token = keep_secret, quiet = TRUE),
    hub_snapshot = hub_snapshot(repos$bert, token = keep_secret, quiet = TRUE),
    hub_load = hub_load(repos$bert, token = keep_secret, quiet = TRUE),
    hub_repo_info = hub_repo_info(repos$bert, token = keep_secret),
    hub_list_files = hub_list_files(repos$bert, token = keep_secret),
    hub_file_exists = hub_file_exists(repos$bert, "config.json", token = keep_secret)
  )
  for (name in names(objects)) expect_no_secret(objects[[name]], name)
  expect_identical(objects$hub_file_exists, TRUE)
})

test_that("an endpoint, and a chat made with it, keep an id of the api_key, not the key", {
  ep <- hf_endpoint("http://127.0.0.1:9/v1", model = "m", api_key = keep_secret)
  shown <- utils::capture.output(print(ep), utils::str(unclass(ep)))
  expect_false(any(grepl(keep_secret, shown, fixed = TRUE)))
  expect_no_secret(ep, "hf_endpoint()")
  expect_no_secret(hf_chat(endpoints = list(ep)), "hf_chat()")
  expect_identical(hfbridge:::endpoint_spec(ep, NULL)$api_key, keep_secret)
  # restored in a session that never saw the key: an auth error that says what to do
  restored <- unserialize(serialize(ep, NULL))
  restored$key_id <- "endpoint-key-from-another-session"
  expect_error(hf_chat(endpoints = list(restored)), class = "hfbridge_error_auth")
})

test_that("a password in an endpoint's URL or in HF_ENDPOINT is never shown or kept", {
  password <- "urlPa55wordXYZ"
  ep <- hf_endpoint(sprintf("http://erin:%s@127.0.0.1:9/v1", password), model = "m",
                    retries = 0L, timeout = 2)
  chat <- hf_chat(endpoints = list(ep))
  err <- tryCatch(chat$chat("hi"), error = identity)
  expect_s3_class(err, "hfbridge_error")
  shown <- c(utils::capture.output(print(ep), utils::str(unclass(ep)), print(chat)),
             conditionMessage(err), unlist(err[setdiff(names(err), "call")]))
  expect_false(any(grepl(password, shown, fixed = TRUE)))
  expect_true(any(grepl("http://***@127.0.0.1:9", shown, fixed = TRUE)))
  for (object in list(ep, chat)) {
    expect_false(length(grepRaw(password, serialize(object, NULL), fixed = TRUE)) > 0L)
  }
  expect_identical(hfbridge:::endpoint_spec(ep, NULL)$url,
                   sprintf("http://erin:%s@127.0.0.1:9/v1", password))
  url <- local_hub()
  withr::local_envvar(HF_ENDPOINT = sub("://", sprintf("://alice:%s@", password), url))
  err <- tryCatch(hub_download("nobody/nothing", "config.json"), error = identity)
  expect_s3_class(err, "hfbridge_error_repo_not_found")  # its message names the endpoint
  doctor <- utils::capture.output(report <- hfbridge_doctor())
  shown <- c(conditionMessage(err), unlist(err[setdiff(names(err), "call")]), doctor,
             unlist(report))
  expect_false(any(grepl(password, shown, fixed = TRUE)))
})
