# The local inference server: python -m pybridge.serve in a background process, started like the
# mirror (service.R). One model load serves every R process, Shiny session and HTTP client.

#' Serve cached models over OpenAI, TGI and TEI routes
#'
#' Starts `python -m pybridge.serve` in a background process and returns once every model is
#' loaded and the server answers. Each model is loaded once, pinned to the commit its revision
#' resolved to, and served to any number of clients: R sessions, Shiny apps, future workers,
#' Python's `openai` and `huggingface_hub.InferenceClient`, or `curl`. It speaks:
#' \itemize{
#'   \item OpenAI: `POST /v1/chat/completions` (with `stream = true`, server-sent events ending
#'     with `data: [DONE]`), `/v1/completions`, `/v1/embeddings`, `GET /v1/models`. Chat and
#'     completions are transformers' own `transformers serve` handlers (with its continuous
#'     batching when `continuous_batching = TRUE`);
#'   \item TGI: `POST /` with `{"inputs", "parameters"}`, `/generate`, `/generate_stream`,
#'     `GET /info`, `GET /health`;
#'   \item TEI: `POST /embed` (always `[[f32]]`), `/predict` (`[[{label, score}]]` for a batch),
#'     `/rerank` (`{"query", "texts"}` to `[{index, score}]`, best first, for a cross-encoder).
#' }
#' `url/models/<name>` is the server as seen by one model, for clients that post every task to
#' their base URL (`InferenceClient(base_url = ...)`). Errors are JSON `{"error", "error_type"}`:
#' 422 for a request that is not valid, 424 when the model fails, 429 (with `Retry-After`) when
#' the queue is full, 413 for a body or an input list over the limit, 503 on a timeout.
#' Concurrent embedding and classification requests are batched together.
#'
#' The server binds to `127.0.0.1` by default. Any other `host` needs an `api_key`: every route
#' then answers 401 without `Authorization: Bearer <api_key>`. The key reaches the server through
#' its standard input, never its command line or environment, and is not kept in the returned
#' object. CORS is off.
#' The log holds one line per request (method, path, status, time): never a header, a token or a
#' prompt.
#'
#' @param models The models, named by task: `c(chat = "org/chat-model",
#'   "feature-extraction" = "sentence-transformers/all-MiniLM-L6-v2")`. A value is a Hub repo id
#'   (optionally `"repo@revision"`) or a local folder, optionally followed by the fast path of
#'   [embed_text()] as `"#backend-precision"`, for example
#'   `"sentence-transformers/all-MiniLM-L6-v2#torch-bf16"`. Tasks: `"chat"` or `"text-generation"`,
#'   `"feature-extraction"` (or `"embedding"`), `"text-classification"`, `"rerank"` (a
#'   cross-encoder with one label).
#' @param host The address to bind.
#' @param port The port; `NULL` picks a free one.
#' @param api_key A key clients must send; required for a `host` other than loopback.
#' @param offline Serve from the cache only (`HF_HUB_OFFLINE=1` in the server).
#' @param continuous_batching Let concurrent greedy chat requests share transformers'
#'   continuous batching, with a paged cache of 32k tokens made at start. Off by default, as in
#'   `transformers serve`: requests then run one after another per model. Requests that sample
#'   (a `temperature` above 0, `top_p` or `seed`) and structured ones always run on their own.
#' @param max_tokens The most new tokens a request may ask for, and the default.
#' @param max_inputs The most texts in one embedding or classification request.
#' @param max_body_bytes The largest request body.
#' @param timeout Seconds a request may take (a generation stops then: chat answers with what it
#'   generated, TGI's routes with 503), and seconds to wait for the server to start.
#' @param log A file for the server's log; by default a temporary file.
#' @param python The Python that runs the server, as for [hub_mirror_start()].
#' @return An object of class `hfbridge_server`: a list with `url`, `models` (a data frame of
#'   `name`, `task` and `revision`), `log`, `python` and the `process`.
#' @seealso [hf_serve_stop()]
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' srv <- hf_serve(c("feature-extraction" = "sentence-transformers/all-MiniLM-L6-v2"))
#' srv
#' # any OpenAI or TEI client: POST srv$url/v1/embeddings, srv$url/embed
#' dim(hf_inference("feature-extraction", c("a cat", "a dog"), endpoint = srv))
#' hf_serve_stop(srv)
hf_serve <- function(models, host = "127.0.0.1", port = NULL, api_key = NULL, offline = FALSE,
                     continuous_batching = FALSE, max_tokens = 512L, max_inputs = 512L, max_body_bytes = 2 * 1024^2,
                     timeout = 300, log = tempfile("hfbridge-serve-", fileext = ".log"),
                     python = service_python()) {
  specs <- serve_model_specs(models)
  check_host(host)
  port <- if (is.null(port)) 0L else check_port(port)
  if (!is.null(api_key)) check_string(api_key, "api_key")
  if (is.null(api_key) && !serve_is_loopback(host)) {
    hfbridge_abort("invalid_argument", sprintf(paste(
      "Binding to %s lets other machines reach the server: give an `api_key`, or bind to",
      "\"127.0.0.1\"."), host), argument = "api_key")
  }
  check_flag(offline, "offline")
  check_flag(continuous_batching, "continuous_batching")
  log <- check_log(log)
  args <- c("-m", "pybridge.serve", rbind("--model", specs), "--host", host, "--port", port,
            "--max-tokens", check_count(max_tokens, "max_tokens", 1L),
            "--max-inputs", check_count(max_inputs, "max_inputs", 1L),
            "--max-body-bytes", format(check_count(max_body_bytes, "max_body_bytes", 1L),
                                       scientific = FALSE),
            "--timeout", format(check_seconds(timeout, "timeout")),
            if (offline) "--offline", if (continuous_batching) "--continuous-batching",
            if (!is.null(api_key)) "--api-key-stdin")
  started <- service_start(check_string(python, "python"), args, "server",
                           "^hfbridge serve ready at (http://\\S+)\\s*$", timeout, log, api_key)
  server <- structure(
    list(url = started$url, models = NULL, log = log, python = python, process = started$process,
         id = basename(tempfile("server-"))),
    class = "hfbridge_server"
  )
  if (!is.null(api_key)) .hfb$server_keys[[server$id]] <- api_key
  server$models <- serve_models(server, names(specs))
  server
}

#' Stop a local inference server
#'
#' @param server An `hfbridge_server` from [hf_serve()].
#' @param timeout Seconds to wait for a clean exit before the process is killed.
#' @return `server`, invisibly.
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' srv <- hf_serve(c("text-classification" =
#'                     "distilbert/distilbert-base-uncased-finetuned-sst-2-english"))
#' hf_serve_stop(srv)
#' srv$process$is_alive()
hf_serve_stop <- function(server, timeout = 5) {
  serve_check(server)
  service_stop(server$process, timeout, "server")
  .hfb$server_keys[[server$id]] <- NULL
  invisible(server)
}

#' @export
format.hfbridge_server <- function(x, ...) {
  models <- if (NROW(x$models)) {
    sprintf("    %-20s %s%s", x$models$task, x$models$name,
            ifelse(is.na(x$models$revision), "", paste0(" @ ", substr(x$models$revision, 1, 12))))
  }
  c("<hfbridge_server>",
    paste0("  url:    ", x$url),
    paste0("  status: ", service_status(x$process)),
    paste0("  key:    ", if (!is.null(.hfb$server_keys[[x$id]])) "required (not shown)"
           else if (service_restored(x$process)) "unknown here" else "none"),
    "  models:", models,
    paste0("  log:    ", x$log))
}

#' @export
print.hfbridge_server <- function(x, ...) {
  cat(format(x), sep = "\n")
  invisible(x)
}

# ---- helpers ------------------------------------------------------------------------------------

# c(task = "repo[@rev]") -> "task=repo[@rev]", one per model.
serve_model_specs <- function(models) {
  ok <- (is.character(models) || is.list(models)) && length(models) > 0 &&
    !is.null(names(models)) && all(nzchar(names(models)))
  if (ok) models <- unlist(models)
  if (!ok || !is.character(models) || anyNA(models) || !all(nzchar(models)) ||
      length(models) != length(names(models))) {
    hfbridge_abort("invalid_argument", paste(
      "`models` must name each model by its task, e.g. c(chat = \"org/model\",",
      "\"feature-extraction\" = \"sentence-transformers/all-MiniLM-L6-v2\")."),
      argument = "models")
  }
  stats::setNames(paste0(names(models), "=", models), names(models))
}

serve_is_loopback <- function(host) {
  host %in% c("localhost", "::1") || grepl("^127\\.", host)
}

serve_check <- function(server) {
  if (!inherits(server, "hfbridge_server") || !inherits(server$process, "process")) {
    hfbridge_abort("invalid_argument", "`server` must come from hf_serve().", argument = "server")
  }
}

# GET a JSON route of the server (with its key), parsed; NULL if jsonlite is not installed.
serve_get <- function(server, route) {
  if (!requireNamespace("jsonlite", quietly = TRUE)) return(NULL)
  key <- .hfb$server_keys[[server$id]]
  headers <- if (!is.null(key)) c(Authorization = paste("Bearer", key))
  con <- url(paste0(server$url, route), method = "libcurl", headers = headers)
  on.exit(close(con))
  jsonlite::fromJSON(paste(readLines(con, warn = FALSE), collapse = "\n"),
                     simplifyVector = FALSE)
}

serve_models <- function(server, tasks) {
  listed <- serve_get(server, "/v1/models")$data
  if (is.null(listed)) {
    return(data.frame(name = NA_character_, task = tasks, revision = NA_character_))
  }
  pick <- function(field) vapply(listed, function(m) as.character(m[[field]] %||% NA), "")
  data.frame(name = pick("id"), task = pick("task"), revision = pick("revision"))
}
