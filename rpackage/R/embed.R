# Embeddings and hidden states: pybridge.embed tokenizes once, sorts the texts by length and runs
# the batches in inference mode; job_run() steps through the batches under a cli progress bar.

#' Sentence embeddings as a numeric matrix
#'
#' Runs a model on texts and pools each text's token vectors into one row: `"mean"` over the
#' real tokens (what sentence-transformers models such as all-MiniLM-L6-v2 use), `"cls"` (the
#' first token) or `"max"`. With `normalize = TRUE` each row has unit length, as
#' sentence-transformers' `Normalize` gives. On all-MiniLM-L6-v2 the result equals
#' sentence-transformers' `encode()` with the same pooling and normalisation.
#'
#' With an image-text model such as CLIP (`"openai/clip-vit-base-patch32"`), each row is the
#' model's text features (`get_text_features()` in transformers: its own pooling and
#' projection, so `pooling` does not apply), in the space of [embed_image()]'s image features.
#'
#' The texts are tokenized once, sorted by length and cut into batches of at most `batch_size`,
#' so that each batch is padded only to its own longest text, by at most 10% of it; the model
#' runs in torch's inference mode, on a CPU one batch per core.
#' This is several times faster than transformers' feature-extraction pipeline. The model is
#' loaded once per session (see [pipeline_cache_info()]).
#'
#' @param texts A character vector, or a list of strings.
#' @param model A Hub repo id or a local folder of a transformers model.
#' @param pooling `"mean"`, `"cls"` or `"max"`.
#' @param normalize If `TRUE`, scale each row to unit (L2) length.
#' @param batch_size Texts per forward pass.
#' @param max_length Longest input in tokens; longer texts are truncated. `NULL` takes the
#'   model's `sentence_bert_config.json` (`max_seq_length`) if it has one, else the limit of its
#'   tokenizer and position embeddings. More than its position embeddings take is
#'   `hfbridge_error_invalid_argument`, as is an empty text on a model that adds no special
#'   tokens (GPT-2): it has no tokens to pool.
#' @param token A Hub token for private or gated models; by default `HF_TOKEN` or the token
#'   file. Never printed.
#' @param parallel If `TRUE`, run in chunks on the workers of the active [future::plan()]
#'   (see [hfbridge_parallel]).
#' @param chunk_size Texts per chunk; giving it also runs in chunks. By default about four
#'   chunks per worker.
#' @param endpoint A server from [hf_serve()] (or the URL of a TEI-compatible one) that serves
#'   `model`: the texts are sent to it, 64 a request and 8 requests at a time, instead of
#'   loading the model here; the server's pooling applies (that of the model's
#'   sentence-transformers files), and `normalize` is sent to it (TEI's `normalize`), so the
#'   rows equal those made here: `FALSE` gives the raw pooled rows, `TRUE` unit ones. Future
#'   workers can each send their chunks to one server this way (give them `srv$url`) rather
#'   than each loading the model.
#' @param retry How many times a failed chunk runs again before
#'   `hfbridge_error_chunk_failed`.
#' @param backend,precision `"torch"` and `"fp32"` (the defaults) are exact; `precision = "bf16"`
#'   (AMX) was 2.4 times as fast on all-MiniLM-L6-v2, on CPUs that have it; `backend =
#'   "onnx"` and `precision = "int8"` are the other choices. The model is converted once,
#'   measured against fp32 and cached on disk; see [fastpath].
#' @inheritParams pipeline
#' @return A numeric matrix with one row per text and one column per hidden dimension; its
#'   rownames are `names(texts)`, if any. With a fast `backend` or `precision`, its attribute
#'   `"fastpath"` holds the conversion's measures against fp32 (see [fastpath]); one below 0.99
#'   also signals `hfbridge_warning_fastpath_quality`.
#' @family pipelines
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' texts <- c(a = "The cat sat on the mat.", b = "A dog lay on the rug.")
#' e <- embed_text(texts, "sentence-transformers/all-MiniLM-L6-v2", normalize = TRUE)
#' dim(e)
#' e %*% t(e)   # cosine similarities
#' # On future workers, in chunks: see ?hfbridge_parallel
embed_text <- function(texts, model, pooling = c("mean", "cls", "max"), normalize = FALSE,
                       batch_size = 32, max_length = NULL, revision = "main", device = "cpu",
                       token = NULL, allow_pickle = FALSE, trust_remote_code = FALSE,
                       quiet = FALSE, parallel = FALSE, chunk_size = NULL, retry = 0L,
                       endpoint = NULL, backend = c("torch", "onnx"),
                       precision = c("fp32", "bf16", "int8")) {
  row_names <- names(texts)
  pooling <- check_choice(pooling, c("mean", "cls", "max"), "pooling")
  fast <- fastpath_choice(backend, precision)
  if (!is.null(endpoint) && !fastpath_exact(fast)) {
    hfbridge_abort("invalid_argument", paste(
      "A server's model runs as the server was started: give backend and precision to the",
      "server (its --model task=repo#backend-precision), not to embed_text()."),
      argument = "backend")
  }
  if (!is.null(endpoint)) {
    out <- hf_inference("feature-extraction", texts, model = model, endpoint = endpoint,
                        normalize = check_flag(normalize, "normalize"), token = token)
    return(structure(as.vector(out), dim = dim(out), dimnames = list(row_names, NULL)))
  }
  if (parallel_wanted(parallel, chunk_size)) {
    return(parallel_embed(texts, check_string(model, "model"), list(
      pooling = pooling, normalize = check_flag(normalize, "normalize"),
      batch_size = check_count(batch_size, "batch_size", 1L),
      max_length = check_optional_count(max_length, "max_length"),
      device = check_string(device, "device"),
      allow_pickle = check_flag(allow_pickle, "allow_pickle"),
      trust_remote_code = check_flag(trust_remote_code, "trust_remote_code"),
      backend = fast$backend, precision = fast$precision),
      check_string(revision, "revision"), token, check_flag(quiet, "quiet"), chunk_size, retry))
  }
  job <- embed_start(texts, model, "embed", c(list(pooling = pooling,
                     normalize = check_flag(normalize, "normalize")), fast), batch_size,
                     max_length, revision, device, token, allow_pickle, trust_remote_code, quiet)
  out <- job_run(job, "Embedding", quiet, units = embed_chunk)
  rownames(out) <- row_names
  if (!fastpath_exact(fast)) {
    attr(out, "fastpath") <- fastpath_quality(py_call("fastpath", "quality_of", job))
    fastpath_warn(attr(out, "fastpath"), model)
  }
  out
}

#' Hidden states of a model, one matrix per text
#'
#' The token vectors of one or several layers of a model, for each text: what
#' `model(..., output_hidden_states = TRUE)` gives in Python, without the padding.
#'
#' @param layers The layers to return: `0` is the embedding output, `1` to `n` the
#'   transformer layers, and negative numbers count from the end (`-1`, the default, is the
#'   last layer).
#' @inheritParams embed_text
#' @return A list with one element per text (named by `names(texts)`): a tokens x hidden
#'   matrix, or with several `layers` a tokens x hidden x layers array. Rownames are the tokens.
#' @family pipelines
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' hs <- hidden_states("Deep learning is powerful.", "bert-base-uncased")
#' dim(hs[[1]])   # tokens x hidden size
#' hs <- hidden_states("Deep learning is powerful.", "bert-base-uncased", layers = c(0, -1))
#' dim(hs[[1]])   # tokens x hidden size x 2
hidden_states <- function(texts, model, layers = -1, batch_size = 32, max_length = NULL,
                          revision = "main", device = "cpu", token = NULL, allow_pickle = FALSE,
                          trust_remote_code = FALSE, quiet = FALSE) {
  row_names <- names(texts)
  if (!is.numeric(layers) || length(layers) == 0L || anyNA(layers) ||
        any(layers != round(layers))) {
    hfbridge_abort("invalid_argument", "`layers` must be whole numbers, e.g. -1 or c(0, -1).",
                   argument = "layers")
  }
  job <- embed_start(texts, model, "hidden", list(layers = as.list(as.integer(layers))),
                     batch_size, max_length, revision, device, token, allow_pickle,
                     trust_remote_code, quiet)
  res <- job_run(job, "Computing hidden states", quiet, units = embed_chunk)
  out <- pipeline_matrices(res)
  if (length(dim(res$values)) == 3L) {
    layer_names <- paste0("layer_", as.integer(res$layers))
    out <- lapply(out, function(m) {
      dimnames(m)[[3L]] <- layer_names
      m
    })
  }
  names(out) <- row_names
  out
}

# ---- jobs ----------------------------------------------------------------------------------

embed_start <- function(texts, model, kind, options, batch_size, max_length, revision, device,
                        token, allow_pickle, trust_remote_code, quiet) {
  texts <- check_texts(texts, "texts")
  hub_check_token(token)
  do.call(py_call, c(list("embed", "start", as.list(texts), check_string(model, "model"),
                          kind = kind), options, list(
    batch_size = check_count(batch_size, "batch_size", 1L),
    max_length = check_optional_count(max_length, "max_length"),
    revision = check_string(revision, "revision"), device = check_string(device, "device"),
    allow_pickle = check_flag(allow_pickle, "allow_pickle"),
    trust_remote_code = check_flag(trust_remote_code, "trust_remote_code"),
    env = hf_env(), token = token, quiet = check_flag(quiet, "quiet"))))
}

# Batches per progress step: about 50 steps, and at least 4 batches each, so that the batches of
# one step can run side by side on the CPU's cores.
embed_chunk <- function(total) max(4L, as.integer(total) %/% 50L)
