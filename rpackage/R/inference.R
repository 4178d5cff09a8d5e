# Remote inference: endpoints (a URL, an Inference Provider, hfbridge's own server), the failover
# chain, and task verbs in the shapes of the local pipelines. pybridge/inference.py does the work
# through huggingface_hub's InferenceClient.

#' An inference endpoint, for a chain of endpoints
#'
#' Describes one link of the failover chain that [hf_chat()] and [hf_inference()] take as
#' `endpoints`: an OpenAI-compatible, TGI or TEI server by URL (vLLM, llama.cpp, Ollama,
#' `transformers serve`, hfbridge's own [hf_serve()]), an HF Inference Provider, or a Hub model
#' run in this R session (`local = TRUE`, for chat). A chain may also hold a server handle from
#' [hf_serve()] or a URL string as they are.
#'
#' Keys: the HF token (`HF_TOKEN` or the saved token) is sent only to Hugging Face hosts and to
#' the Hub `HF_ENDPOINT` names. Any other endpoint gets `api_key`, or the variable `api_key_env`
#' names (read when the chat is made, or at each [hf_inference()] call), or no key at all. Keys
#' are never printed, and never kept in the object: it holds an id of its `api_key`, which this R
#' session keeps, so an endpoint saved with [saveRDS()] and read in another session needs its
#' `api_key` again (`api_key_env` needs nothing).
#'
#' @param url The server's base URL, for example `"http://127.0.0.1:8000/v1"`. A
#'   `user:password@` in it is kept as a key is: shown as `***`, never saved with the object.
#' @param provider An Inference Provider: `"auto"`, or a name such as `"together"`.
#' @param model The model to ask for (a Hub repo id, or the name the server serves).
#' @param api_key A key for this endpoint.
#' @param api_key_env The name of an environment variable that holds the key.
#' @param timeout Seconds one request may take.
#' @param retries Tries after the first on this endpoint, on 429, 503, timeouts and refused
#'   connections, with backoff that honours `Retry-After`.
#' @param local `TRUE` for `model` run in this R session through transformers.
#' @return An object of class `hfbridge_endpoint`.
#' @export
#' @examples
#' hf_endpoint("http://127.0.0.1:8000/v1", model = "my-model", timeout = 10)
#' hf_endpoint(provider = "auto", model = "Qwen/Qwen2.5-7B-Instruct")
hf_endpoint <- function(url = NULL, provider = NULL, model = NULL, api_key = NULL,
                        api_key_env = NULL, timeout = 120, retries = 2L, local = FALSE) {
  if (!is.null(url)) check_string(url, "url")
  if (!is.null(provider)) check_string(provider, "provider")
  if (!is.null(model)) check_string(model, "model")
  if (!is.null(api_key)) check_string(api_key, "api_key")
  if (!is.null(api_key_env)) check_string(api_key_env, "api_key_env")
  check_flag(local, "local")
  if (sum(local, !is.null(url), !is.null(provider)) != 1L) {
    hfbridge_abort("invalid_argument", paste(
      "An endpoint is one of: a `url`, a `provider`, or `local = TRUE` with a `model`."),
      argument = "url")
  }
  if (local && is.null(model)) {
    hfbridge_abort("invalid_argument", "A local endpoint needs a `model`.", argument = "model")
  }
  credentials <- !is.null(url) && grepl(url_credentials, url)
  structure(list(url = if (credentials) sub(url_credentials, "\\1***@", url) else url,
                 url_id = if (credentials) endpoint_key_id(url),
                 provider = provider, model = model, key_id = endpoint_key_id(api_key),
                 api_key_env = api_key_env, timeout = check_seconds(timeout, "timeout"),
                 retries = check_count(retries, "retries"), local = local),
            class = "hfbridge_endpoint")
}

#' @export
format.hfbridge_endpoint <- function(x, ...) {
  where <- if (isTRUE(x$local)) "local" else x$url %||% paste0("provider:", x$provider)
  key <- if (!is.null(x$key_id)) "api_key (not shown)" else if (!is.null(x$api_key_env))
    paste0("$", x$api_key_env) else "none"
  sprintf("<hfbridge_endpoint> %s%s, key: %s, timeout %gs, retries %d", where,
          if (is.null(x$model)) "" else paste0(" model ", x$model), key, x$timeout, x$retries)
}

#' @export
print.hfbridge_endpoint <- function(x, ...) {
  cat(format(x), sep = "\n")
  invisible(x)
}

#' Run a task on a remote endpoint
#'
#' Runs a task on an HF Inference Provider, an OpenAI-compatible/TGI/TEI server, or a server of
#' [hf_serve()], through huggingface_hub's `InferenceClient`, and returns what the local
#' [pipeline()] of the same task returns: a data frame for text-generation (`text_id`, `prompt`,
#' `generated_text`), text-classification (`text_id`, `text`, `label`, `score`; the best label
#' unless `top_k` says otherwise), token-classification (`text_id`, `entity_group`, `score`,
#' `word`, `start`, `end`) and zero-shot-classification (`text_id`, `label`, `score`), and an
#' n x d matrix for feature-extraction. Image and audio tasks take file paths or URLs, sent as
#' their bytes: image-classification and zero-shot-image-classification (`image`, `label`,
#' `score`), object-detection (and `xmin`, `ymin`, `xmax`, `ymax` in pixels), image-to-text
#' (`image`, `generated_text`) and automatic-speech-recognition (`audio_id`, `file`, `text`). An
#' image is read here first, from its file or URL, as [pipeline()] reads it: one that is not an
#' image is `hfbridge_error_invalid_file`, and a URL that fails is a `network` error naming that
#' URL, before any endpoint is asked.
#'
#' Requests run 8 at a time (feature-extraction sends 64 texts a request), so a server that
#' batches (hfbridge's, TEI, vLLM) answers them together. With `endpoints`, the chain is tried
#' in order: an endpoint is tried again after 429, 503, a timeout or a refused connection (with
#' backoff, honouring `Retry-After`), and left for the next one after its tries; 400, 401, 403
#' and 422 stop the chain at once. The result's attributes `endpoint`, `tries` and `latency_ms`
#' say which endpoint answered, after how many tries in all, and how long the call took.
#'
#' @param task One of `"text-generation"`, `"feature-extraction"`, `"text-classification"`,
#'   `"token-classification"`, `"zero-shot-classification"`, `"image-classification"`,
#'   `"zero-shot-image-classification"`, `"object-detection"`, `"image-to-text"`,
#'   `"automatic-speech-recognition"`.
#' @param inputs A character vector: texts, or file paths or URLs for the image and audio tasks.
#' @param model The model: a Hub repo id for a provider, or the name a server serves (the
#'   default model of the server when `NULL`).
#' @param endpoint A URL, or a server from [hf_serve()].
#' @param provider An Inference Provider (`"auto"` or a name).
#' @param ... Task parameters, as the task's `InferenceClient` method takes them
#'   (`max_new_tokens`, `stop`, `top_k`, `candidate_labels`, ...). [pipeline()]'s names are
#'   taken where `InferenceClient` names the parameter otherwise: `stop_sequence` is `stop`, and
#'   feature-extraction's `truncation` is `truncate`. A pipeline() argument no endpoint can
#'   honour (`num_return_sequences` above 1: the API returns one text per prompt; `num_beams`)
#'   signals `hfbridge_error_unsupported`, and any other name `hfbridge_error_invalid_argument`,
#'   before any request.
#' @param endpoints A failover chain: a list of [hf_endpoint()]s, URLs and servers.
#' @param api_key A key for `endpoint` (never the HF token, which goes to Hugging Face hosts
#'   only).
#' @param timeout Seconds one request may take.
#' @param token An HF token for Hugging Face hosts; by default `HF_TOKEN` or the saved one.
#' @return A data frame or a matrix, with attributes `endpoint`, `tries` and `latency_ms`.
#' @seealso [hf_chat()], [hf_serve()], [hf_endpoint()]
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' srv <- hf_serve(c("feature-extraction" = "sentence-transformers/all-MiniLM-L6-v2"))
#' m <- hf_inference("feature-extraction", c("a cat", "a dog"), endpoint = srv)
#' dim(m)
#' attr(m, "endpoint")
#' hf_serve_stop(srv)
#' # Not run here: Inference Providers need the internet and a Hugging Face token.
#' \dontrun{
#' hf_inference("text-classification", "I love it", provider = "auto",
#'              model = "distilbert/distilbert-base-uncased-finetuned-sst-2-english")
#' }
hf_inference <- function(task, inputs, model = NULL, endpoint = NULL, provider = NULL, ...,
                         endpoints = NULL, api_key = NULL, timeout = 120, token = NULL) {
  check_string(task, "task")
  inputs <- check_texts(inputs, "inputs")
  if (!is.null(model)) check_string(model, "model")
  chain <- endpoint_chain(endpoint, provider, endpoints, model, api_key, timeout)
  res <- py_call("inference", "infer", task, as.list(inputs), chain, model = model,
                 args = list(...), env = hf_env(), token = token)
  out <- inference_value(task, res[[1]])
  record <- res[[2]]
  attr(out, "endpoint") <- record$endpoint
  attr(out, "tries") <- as.integer(record$tries)
  attr(out, "latency_ms") <- record$latency_ms
  out
}

inference_value <- function(task, cols) {
  switch(
    task,
    "feature-extraction" = cols,
    "text-generation" = columns_frame(cols, c(text_id = "integer", prompt = "character",
                                              generated_text = "character")),
    "text-classification" = columns_frame(cols, c(text_id = "integer", text = "character",
                                                  label = "character", score = "double")),
    "zero-shot-classification" = columns_frame(cols, c(text_id = "integer", label = "character",
                                                       score = "double")),
    "token-classification" = columns_frame(cols, c(
      text_id = "integer", entity_group = "character", score = "double", word = "character",
      start = "integer", end = "integer")),
    "image-classification" = ,
    "zero-shot-image-classification" = columns_frame(cols, c(
      image = "character", label = "character", score = "double")),
    "object-detection" = columns_frame(cols, c(
      image = "character", label = "character", score = "double", xmin = "integer",
      ymin = "integer", xmax = "integer", ymax = "integer")),
    "image-to-text" = columns_frame(cols, c(image = "character", generated_text = "character")),
    "automatic-speech-recognition" = columns_frame(cols, c(
      audio_id = "integer", file = "character", text = "character"))
  )
}

# ---- the chain ----------------------------------------------------------------------------------

# The chain as pybridge.inference.endpoint() takes it: a list of lists with url or provider (or
# local), model, api_key (read now from api_key_env), timeout and retries.
endpoint_chain <- function(endpoint, provider, endpoints, model, api_key, timeout,
                           local_ok = FALSE) {
  given <- sum(!is.null(endpoint), !is.null(provider), !is.null(endpoints))
  if (given == 0L && local_ok) {
    return(list(endpoint_spec(hf_endpoint(model = model, local = TRUE), model)))
  }
  if (given != 1L) {
    hfbridge_abort("invalid_argument", paste(
      "Name one of `endpoint` (a URL or a server from hf_serve()), `provider`, or `endpoints`",
      "(a failover chain)."), argument = "endpoint")
  }
  if (!is.null(endpoints)) {
    if (!is.list(endpoints) || inherits(endpoints, c("hfbridge_endpoint", "hfbridge_server")) ||
        !length(endpoints)) {
      hfbridge_abort("invalid_argument", paste(
        "`endpoints` must be a non-empty list of hf_endpoint()s, URLs and servers from",
        "hf_serve()."), argument = "endpoints")
    }
    return(lapply(endpoints, endpoint_spec, model = model))
  }
  link <- if (!is.null(provider)) {
    hf_endpoint(provider = provider, model = model, api_key = api_key, timeout = timeout)
  } else if (inherits(endpoint, "hfbridge_server")) {
    endpoint
  } else {
    hf_endpoint(check_string(endpoint, "endpoint"), model = model, api_key = api_key,
                timeout = timeout)
  }
  list(endpoint_spec(link, model))
}

# An endpoint's api_key stays in this session, out of the object: print(), str() and saveRDS() of
# an endpoint (or of a chat that holds one) never hold it. The object keeps an id.
endpoint_key_id <- function(api_key) {
  if (is.null(api_key)) return(NULL)
  keys <- .hfb$endpoint_keys
  known <- names(keys)[vapply(keys, identical, logical(1), api_key)]
  if (length(known)) return(known[1])
  id <- basename(tempfile("endpoint-key-"))
  .hfb$endpoint_keys[[id]] <- api_key
  id
}

# A URL's user:password (http://user:pw@host/...), kept, as keys are, out of the object.
url_credentials <- "^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@"

endpoint_url <- function(link) {
  endpoint_secret(link$url_id, paste(
    "This endpoint's URL holds a password given in another R session, and passwords are never",
    "saved with an endpoint: make it again with the URL."), "url") %||% link$url
}

endpoint_key <- function(link) {
  endpoint_secret(link$key_id, paste(
    "This endpoint's api_key was given in another R session, and keys are never saved with an",
    "endpoint: make it again with api_key, or use api_key_env."), "api_key")
}

# The secret kept under `id` in this session (NULL for no id); `missing` says what to do when
# the id comes from another session.
endpoint_secret <- function(id, missing, argument) {
  if (is.null(id)) return(NULL)
  value <- .hfb$endpoint_keys[[id]]
  if (is.null(value)) hfbridge_abort("auth", missing, argument = argument)
  value
}

endpoint_spec <- function(link, model) {
  served <- NULL
  if (inherits(link, "hfbridge_server")) {
    key <- .hfb$server_keys[[link$id]]
    listed <- link$models[!is.na(link$models$name), , drop = FALSE]
    served <- as.list(stats::setNames(listed$task, listed$name))
    link <- hf_endpoint(paste0(link$url, "/v1"), model = model, api_key = key)
  } else if (is.character(link) && length(link) == 1L) {
    link <- hf_endpoint(link, model = model)
  }
  if (!inherits(link, "hfbridge_endpoint")) {
    hfbridge_abort("invalid_argument", paste(
      "Each endpoint must be an hf_endpoint(), a URL, or a server from hf_serve()."),
      argument = "endpoints")
  }
  key <- endpoint_key(link)
  if (is.null(key) && !is.null(link$api_key_env)) {
    key <- Sys.getenv(link$api_key_env, unset = "")
    check_env_utf8(structure(key, names = link$api_key_env))
    if (!nzchar(key)) {
      hfbridge_abort("auth", sprintf("The variable %s, which holds the key of %s, is not set.",
                                     link$api_key_env, link$url %||% link$provider),
                     argument = "api_key_env")
    }
  }
  list(url = endpoint_url(link), provider = link$provider, model = link$model %||% model,
       api_key = key,
       timeout = link$timeout, retries = link$retries, local = link$local, served = served)
}
