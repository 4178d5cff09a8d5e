# Pipelines: R checks and shapes the arguments, pybridge.pipeline runs transformers, R builds
# data frames. Long inputs run in chunks under a cli progress bar.

#' Create a Hugging Face pipeline for a text or image task
#'
#' Loads the model of a task once (through the Hub cache, from safetensors weights) and returns
#' an R function that runs it on texts (or images) and returns a data frame, one row per result.
#'
#' Each task returns these columns and takes these arguments of its own:
#'
#' * `"text-classification"`, `"sentiment-analysis"`
#'   - columns: `text_id`, `text`, `label`, `score`
#'   - arguments: `top_k` (rows per text; `NULL`: all labels), `function_to_apply`
#'     (`"sigmoid"`, `"softmax"`, `"none"`), `truncation`, `max_length`
#' * `"zero-shot-classification"`
#'   - columns: `text_id`, `label`, `score`
#'   - arguments: `candidate_labels`, `multi_label`, `hypothesis_template` (with `{}` for the
#'     label)
#' * `"token-classification"`, `"ner"`
#'   - columns: `text_id`, `entity` (or `entity_group`), `score`, `word`, `start`, `end`
#'   - arguments: `aggregation_strategy` (`"none"`, `"simple"`, `"first"`, `"average"`,
#'     `"max"`), `ignore_labels`, `stride`
#' * `"question-answering"`
#'   - columns: `question`, `context`, `answer`, `score`, `start`, `end`
#'   - arguments: `question`, `context`, `top_k`, `max_answer_len`, `doc_stride`, `max_seq_len`,
#'     `max_question_len`, `handle_impossible_answer`, `align_to_words`
#' * `"fill-mask"`
#'   - columns: `text_id`, `mask` (which mask of the text, for a text with several),
#'     `token_id`, `token_str`, `score`, `sequence`
#'   - arguments: `top_k`, `targets`, `tokenizer_kwargs`
#' * `"summarization"`, `"translation"`, `"text2text-generation"`
#'   - columns: `text_id`, `generated_text`
#'   - arguments: `prefix`, `truncation`, `clean_up_tokenization_spaces`, `seed`, `src_lang` and
#'     `tgt_lang` (translation), and `generate()` settings
#' * `"text-generation"`
#'   - columns: `text_id`, `prompt`, `generated_text`
#'   - arguments: `seed`, `return_full_text`, `prefix`, `stop_sequence`, `truncation`,
#'     `handle_long_generation`, `clean_up_tokenization_spaces`, `skip_special_tokens`, and
#'     `generate()` settings
#'   - on a conversation (`messages`, see below): one row with `generated_text` (the
#'     assistant's reply), `finish_reason` (`"stop"`: the model ended its turn or met
#'     `stop_sequence`; `"length"`: it ran out of tokens), `prompt_tokens` and
#'     `completion_tokens`; arguments: `seed`, `stop_sequence` (left out of the reply),
#'     `tools` (tool definitions for the chat template), and `generate()` settings but
#'     `num_return_sequences`
#' * `"feature-extraction"`
#'   - result: a list of token x hidden matrices (rownames: the tokens)
#'   - arguments: `tokenize_kwargs`, `truncation`
#'
#' Image tasks take image paths (PNG, JPEG and the other formats Pillow reads) or http(s) URLs;
#' `image` is the input as given. See also [embed_image()].
#'
#' * `"image-classification"`
#'   - columns: `image`, `label`, `score`
#'   - arguments: `top_k` (rows per image: 5 by default, at most the number of labels),
#'     `function_to_apply`, `timeout` (seconds for one URL)
#' * `"zero-shot-image-classification"` (an image-text model such as CLIP)
#'   - columns: `image`, `label`, `score`
#'   - arguments: `candidate_labels`, `hypothesis_template` (default
#'     `"This is a photo of {}."`), `timeout`
#' * `"object-detection"`
#'   - columns: `image`, `label`, `score`, `xmin`, `ymin`, `xmax`, `ymax` (pixels of the image
#'     as given, integers)
#'   - arguments: `threshold` (the lowest score kept, 0.5 by default), `timeout`
#' * `"image-to-text"` (a captioning model such as BLIP; transformers 5 runs it as
#'   `"image-text-to-text"`)
#'   - columns: `image`, `generated_text`
#'   - arguments: `prompt` (text the caption starts with), `seed`, `timeout`, and `generate()`
#'     settings
#'
#' An image path that does not exist, a folder, or text given to an image task signals
#' `hfbridge_error_invalid_argument`, and a file that is not an image
#' `hfbridge_error_invalid_file`, with the fields `path` and `position`, before the model runs;
#' a URL that cannot be fetched signals `hfbridge_error_network`.
#'
#' The `generate()` settings are `max_new_tokens`, `max_length`, `min_length`,
#' `min_new_tokens`, `do_sample`, `num_beams`, `num_beam_groups`, `num_return_sequences`,
#' `early_stopping`, `temperature`, `top_k`, `top_p`, `typical_p`, `min_p`, `epsilon_cutoff`,
#' `eta_cutoff`, `repetition_penalty`, `encoder_repetition_penalty`, `length_penalty`,
#' `diversity_penalty`, `no_repeat_ngram_size`, `encoder_no_repeat_ngram_size`, `max_time`,
#' `use_cache`, `renormalize_logits`, `remove_invalid_values`, and the token ids
#' `bad_words_ids`, `suppress_tokens`, `begin_suppress_tokens`, `forced_bos_token_id`,
#' `forced_eos_token_id`, `eos_token_id`, `pad_token_id`, `bos_token_id`,
#' `decoder_start_token_id`. `tokenize_kwargs` and `tokenizer_kwargs` are named lists of
#' `truncation`, `max_length`, `padding` and `add_special_tokens`. Every task also takes
#' `batch_size`.
#'
#' Each argument's type and range is checked before the model runs (counts are whole numbers of
#' at least 1, `top_p` is within 0 to 1, `temperature` is above 0, `seed` is from 0 to
#' 2^32 - 1, and so on). An unknown argument, a value of the wrong type or out of range, or
#' `NA`, signals `hfbridge_error_invalid_argument` with the fields `argument`, `task` and
#' `value`, when the pipeline is created (for the defaults in `...`) or called.
#'
#' A text with more tokens than the model takes is refused before the model runs
#' (`hfbridge_error_invalid_argument`, whose field `texts` holds the positions), unless the
#' task is asked to cut it: `truncation = TRUE` (fill-mask: `tokenizer_kwargs = list(truncation
#' = TRUE)`). Token classification cuts it at the tokenizer's length itself, or windows it with
#' `stride`, as transformers does.
#'
#' `text_id` is the position of the text in the input. `start` and `end` are 1-based and
#' inclusive character positions, so `substr(text, start, end)` is the matched text. Token ids
#' are 0-based, as the model sees them. For text generation, `seed` makes sampling reproducible:
#' the same seed gives the same text as `transformers.set_seed(seed)` before the same pipeline
#' in Python. A `translation_xx_to_yy` task name picks that language pair of a multilingual
#' model.
#'
#' A text-generation pipeline also answers a conversation: `messages` is a data frame with the
#' columns `role` and `content` (one row per message), or a list of messages, each
#' `list(role = , content = )`, given as the input or as `messages =`. It is formatted with the
#' model's chat template (see the tokenizer's `$apply_chat_template()`) and answered as
#' transformers' pipeline answers a chat: its defaults sample (temperature 0.7, up to 256 new
#' tokens) unless the model's generation config or the call says otherwise; `do_sample = FALSE`
#' is greedy. The result has a row per reply (`num_return_sequences` asks for several):
#' `generated_text` (the new message, as transformers' `return_full_text = FALSE`; `TRUE` is
#' refused), `finish_reason`, `prompt_tokens` and `completion_tokens`. A model without a chat
#' template signals `hfbridge_error_no_chat_template`. On a
#' model with learned positions (GPT-2's `n_positions`), a text or a conversation whose tokens
#' and `max_new_tokens` need more positions than it has signals `hfbridge_error_invalid_argument`
#' before generating, naming the text (or the conversation's longest message).
#'
#' Without `model`, the task's default model is used, as in transformers (for sentiment analysis
#' `"distilbert/distilbert-base-uncased-finetuned-sst-2-english"`), downloaded from the configured
#' endpoint. transformers 5 removed the question-answering, summarization, translation and
#' text2text-generation pipelines; hfbridge runs those models itself as transformers 4.57 did,
#' and its tests compare them with transformers 4.57's pipelines. Like those, the text-to-text
#' tasks search 4 beams for up to 256 new tokens unless the model's generation config or the
#' call says otherwise (`num_beams = 1` is greedy), and question answering adds up the scores of
#' the same answer found in several windows of a long context.
#'
#' Models are loaded once per R session and reused by later `pipeline()` calls with the same
#' task, model, revision and device (so a Shiny app loads a model once);
#' [pipeline_cache_clear()] frees them. Weights load from safetensors only: a repository with
#' only pickle weights (`*.bin`) is refused with an `hfbridge_error_pickle_weights` condition
#' unless `allow_pickle = TRUE`. Code shipped with a model runs only with
#' `trust_remote_code = TRUE`. An unknown task, or a model the task cannot use, signals
#' `hfbridge_error_unsupported`, whose message lists the supported tasks ([pipeline_tasks()]).
#' A corrupt JSON or safetensors file in the model's folder signals
#' `hfbridge_error_invalid_file` naming it (`filename`).
#'
#' @param task The task, such as `"sentiment-analysis"`; see Details.
#' @param model A Hub repo id or a local folder. `NULL` uses the task's default model.
#' @param revision A branch, tag or commit of the model repository.
#' @param device `"cpu"`, or `"cuda"`, `"cuda:1"`, `"mps"` where torch has them.
#' @param batch_size `NULL` (one text at a time, as transformers does) or the number of texts
#'   the model sees at once. With batches, the classification, fill-mask and feature-extraction
#'   tasks run the texts longest first, so that a batch is padded little (the results keep the
#'   input order).
#' @param ... Default values of the task's own arguments, used by every call (a call's own
#'   arguments win).
#' @param token A Hub token for private or gated models; by default `HF_TOKEN` or the token
#'   file. Used to load the model, never printed, and not kept in the returned function (if
#'   [pipeline_cache_clear()] frees the model, the next call loads it again with `HF_TOKEN` or
#'   the token file).
#' @param allow_pickle Load pickle weights (`*.bin`) when a repository has no safetensors.
#'   Pickles can run code: only for repositories you trust.
#' @param trust_remote_code Run Python code shipped with the model. Only for repositories you
#'   trust.
#' @param quiet If `TRUE`, no progress bar (a bar shows for long inputs, which run in chunks).
#' @param backend,precision For `"feature-extraction"`, `"text-classification"` and
#'   `"token-classification"`: `"torch"` and `"fp32"` (the defaults) are exact; `precision =
#'   "bf16"`, `"int8"` and `backend = "onnx"` run a converted model, measured against fp32 when
#'   it is made (the printed pipeline shows the measures; see [fastpath]).
#' @return A function of class `hfbridge_pipeline`: `f(inputs, ..., quiet, parallel,
#'   chunk_size, retry)`, where `inputs` is a character vector or a list of strings (image
#'   paths or URLs for the image tasks; for
#'   question answering, `question =` and `context =`, or a data frame with those columns; for
#'   text generation, also a conversation) and `...` are the task's arguments. It returns a data
#'   frame, or for `"feature-extraction"` a list of matrices. With `parallel = TRUE` or a
#'   `chunk_size` it runs in chunks on the workers of the active future plan, retrying a failed
#'   chunk `retry` times (see [hfbridge_parallel]).
#' @family pipelines
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' # The demo Hub's models are tiny stand-ins: real shapes and labels, not real answers.
#' classifier <- pipeline("sentiment-analysis")
#' classifier(list("This course is excellent.", "The explanation was very confusing."))
#'
#' ner <- pipeline("ner", "hfbridge-tiny/bert-ner", aggregation_strategy = "simple")
#' ents <- ner("Alice lives in Berlin.")
#' ents
#'
#' generator <- pipeline("text-generation", "gpt2")
#' generator("Once upon a time", max_new_tokens = 5, do_sample = TRUE, seed = 42)
#'
#' chat <- pipeline("text-generation", "hfbridge-tiny/chat")
#' chat(data.frame(role = c("system", "user"),
#'                 content = c("You are brief.", "What is R?")), max_new_tokens = 5, seed = 1)
#'
#' qa <- pipeline("question-answering", "hfbridge-tiny/bert-qa")
#' qa(question = "Where does Alice live?", context = "Alice lives in Berlin.")
#'
#' images <- hub_snapshot("hfbridge-tiny/images", repo_type = "dataset",
#'                        allow_patterns = "*_square.*")
#' squares <- list.files(images, pattern = "square", full.names = TRUE)
#' classify <- pipeline("image-classification", "hfbridge-tiny/vit-colours")
#' classify(squares, top_k = 2)
#' detect <- pipeline("object-detection", "hfbridge-tiny/detr")
#' detect(squares[1], threshold = 0)
#'
#' # Speech recognition (see the section Speech recognition)
#' asr <- pipeline("automatic-speech-recognition", "hfbridge-tiny/whisper")
#' speech <- hub_snapshot("hfbridge-tiny/speech-markers", repo_type = "dataset",
#'                        allow_patterns = c("speech.mp3", "speech.m4a"))
#' asr(file.path(speech, c("speech.mp3", "speech.m4a")), language = "en", max_new_tokens = 5)
#' asr(file.path(speech, "speech.mp3"), return_timestamps = TRUE, chunk_length_s = 30,
#'     batch_size = 4, max_new_tokens = 5)
#' x <- sin(2 * pi * 440 * seq(0, 2, by = 1 / 8000))
#' asr(x, sampling_rate = 8000, max_new_tokens = 5)
pipeline <- function(task, model = NULL, revision = "main", device = "cpu", batch_size = NULL,
                     ..., token = NULL, allow_pickle = FALSE, trust_remote_code = FALSE,
                     quiet = FALSE, backend = c("torch", "onnx"),
                     precision = c("fp32", "bf16", "int8")) {
  task <- check_string(task, "task")
  if (!is.null(model)) model <- check_string(model, "model")
  spec <- list(
    task = task, model = model, revision = check_string(revision, "revision"),
    device = check_string(device, "device"),
    batch_size = check_optional_count(batch_size, "batch_size"),
    allow_pickle = check_flag(allow_pickle, "allow_pickle"),
    trust_remote_code = check_flag(trust_remote_code, "trust_remote_code"),
    quiet = check_flag(quiet, "quiet"), defaults = pipeline_named_args(list(...), task)
  )
  spec[c("backend", "precision")] <- fastpath_choice(backend, precision)
  hub_check_token(token)
  info <- py_call("pipeline", "load", task, model = model, revision = spec$revision,
                  device = spec$device, allow_pickle = spec$allow_pickle,
                  trust_remote_code = spec$trust_remote_code, env = hf_env(), token = token,
                  quiet = spec$quiet, args = spec$defaults, backend = spec$backend,
                  precision = spec$precision)
  spec$model <- info$model
  spec$kind <- info$kind
  quality <- fastpath_quality(info$fastpath)
  fastpath_warn(quality, info$model)
  structure(pipeline_function(spec), class = c("hfbridge_pipeline", "function"), task = task,
            model = info$model, revision = spec$revision, device = spec$device,
            fastpath = quality)
}

# The function pipeline() returns. Made here, its environment holds `spec` only: made inside
# pipeline(), it would keep the token, which saveRDS() would then write to disk.
pipeline_function <- function(spec) {
  force(spec)
  function(inputs = NULL, ..., quiet = NULL, parallel = FALSE, chunk_size = NULL, retry = 0L) {
    if (pipeline_is_chat(spec, inputs, list(...))) {
      return(pipeline_chat(spec, inputs, list(...), parallel_wanted(parallel, chunk_size)))
    }
    if (parallel_wanted(parallel, chunk_size)) {
      quiet <- if (is.null(quiet)) spec$quiet else check_flag(quiet, "quiet")
      return(parallel_pipeline(spec, inputs, list(...), quiet, chunk_size, retry))
    }
    pipeline_call(spec, inputs, list(...), quiet)
  }
}

#' @export
print.hfbridge_pipeline <- function(x, ...) {
  cat(format(x), sep = "\n")
  invisible(x)
}

#' @export
format.hfbridge_pipeline <- function(x, ...) {
  c(sprintf("<hfbridge pipeline> %s", attr(x, "task")),
    sprintf("  model:    %s", attr(x, "model")),
    sprintf("  revision: %s", attr(x, "revision")),
    sprintf("  device:   %s", attr(x, "device")),
    fastpath_format(attr(x, "fastpath")))
}

#' The tasks pipeline() supports
#'
#' @return A character vector of task names, aliases included.
#' @family pipelines
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' pipeline_tasks()
pipeline_tasks <- function() {
  as.character(unlist(py_call("pipeline", "supported_tasks")))
}

#' The models loaded by pipeline(), embed_text(), hidden_states() and hf_chat()
#'
#' Loaded models stay in memory for the R session, so that calling [pipeline()] or [embed_text()]
#' again with the same model, revision, task and device reuses them. A model that [hf_chat()]
#' runs here is the `"pipeline:text-generation"` one, shared with `pipeline("text-generation")`.
#' `pipeline_cache_info()` lists them; `pipeline_cache_clear()` frees them (the next call, or
#' the chat's next turn, loads them again).
#'
#' @return `pipeline_cache_info()`: a data frame with the columns `kind` (the pipeline task, or
#'   `"encoder"` for embeddings; a fast model adds its backend and precision, as in
#'   `"encoder (torch bf16)"`), `model`, `revision`, `device` and `hits` (how many times the
#'   loaded model was reused). `pipeline_cache_clear()`: the number of models freed, invisibly.
#' @family pipelines
#' @export
#' @examples
#' pipeline_cache_info()
#' pipeline_cache_clear()
pipeline_cache_info <- function() {
  empty <- data.frame(kind = character(0), model = character(0), revision = character(0),
                      device = character(0), hits = integer(0), stringsAsFactors = FALSE)
  if (!pipeline_python_loaded()) return(empty)
  pipeline_frame(py_call("models", "cache_info"))
}

#' @rdname pipeline_cache_info
#' @export
pipeline_cache_clear <- function() {
  if (!pipeline_python_loaded()) return(invisible(0L))
  invisible(as.integer(py_call("models", "cache_clear")))
}

# ---- calls ---------------------------------------------------------------------------------

# Inputs per step: the progress bar moves once per step.
pipeline_step_size <- function(batch_size) {
  max(64L, 8L * (if (is.null(batch_size)) 1L else batch_size))
}

# Python calls the pipeline once over all inputs, lazily; R pulls the results step by step, so
# that a seeded generation gives Python's texts however many steps there are.
pipeline_call <- function(spec, inputs, args, quiet) {
  quiet <- if (is.null(quiet)) spec$quiet else check_flag(quiet, "quiet")
  args <- pipeline_merge_args(spec$defaults, pipeline_named_args(args, spec$task))
  if (identical(spec$kind, "question-answering")) {
    pairs <- pipeline_qa_inputs(inputs, args)
    args$question <- as.list(pairs$question)
    args$context <- as.list(pairs$context)
    texts <- NULL
  } else if (audio_kind(spec)) {
    texts <- audio_inputs(inputs)  # speech: paths and samples (audio.R)
  } else {
    texts <- as.list(check_texts(inputs, "inputs"))
  }
  job <- py_call("pipeline", "start", spec$task, texts, model = spec$model,
                 revision = spec$revision, device = spec$device, batch_size = spec$batch_size,
                 args = args, allow_pickle = spec$allow_pickle,
                 trust_remote_code = spec$trust_remote_code, env = hf_env(),
                 backend = spec$backend, precision = spec$precision)
  res <- job_run(job, sprintf("Running %s", spec$task), quiet,
                 units = if (audio_kind(spec)) 1L else pipeline_step_size(spec$batch_size))
  if (identical(spec$kind, "feature-extraction")) {
    return(stats::setNames(pipeline_matrices(res), names(inputs)))
  }
  if (audio_kind(spec)) return(audio_frame(res))
  pipeline_frame(res)
}

# A conversation for text generation: `messages =`, a data frame, or a list of lists.
pipeline_is_chat <- function(spec, inputs, args) {
  identical(spec$kind, "text-generation") &&
    (!is.null(args$messages) || is.data.frame(inputs) ||
       (is.list(inputs) && length(inputs) > 0L && all(vapply(inputs, is.list, TRUE))))
}

# The reply to one conversation (a row per sequence), through pybridge.generation (LocalChat).
pipeline_chat <- function(spec, inputs, args, parallel) {
  if (!is.null(args$messages) && !is.null(inputs)) {
    hfbridge_abort("invalid_argument",
                   "Give the conversation once: as the input or as messages =, not both.",
                   argument = "messages", task = spec$task)
  }
  if (parallel) {
    hfbridge_abort("invalid_argument",
                   "A conversation gets one reply: parallel and chunk_size are for many texts.",
                   argument = "parallel", task = spec$task)
  }
  messages <- if (is.null(inputs)) args$messages else inputs
  args$messages <- NULL
  args <- pipeline_merge_args(spec$defaults, pipeline_named_args(args, spec$task))
  res <- py_call("generation", "pipeline_reply", spec$task, tok_chat_messages(messages),
                 model = spec$model, revision = spec$revision, device = spec$device,
                 args = args, allow_pickle = spec$allow_pickle,
                 trust_remote_code = spec$trust_remote_code, env = hf_env())
  pipeline_frame(res)
}

# The task's own arguments: a named list (vectors of several strings become lists). pybridge
# checks their types and ranges; NA is refused here, because reticulate turns a logical NA into
# True and a character NA into "NA".
pipeline_named_args <- function(args, task) {
  if (length(args) && (is.null(names(args)) || any(!nzchar(names(args))))) {
    hfbridge_abort("invalid_argument", paste0(
      "The task's arguments must be named, e.g. top_k = 2 or candidate_labels = c(\"a\", \"b\")."),
      argument = "...", task = task)
  }
  for (name in names(args)) {
    value <- args[[name]]
    if (!is.null(value) && !is.vector(value) && !is.factor(value) && !is.array(value)) {
      hfbridge_abort("invalid_argument", sprintf(
        "%s: `%s` must be a value or a list of values, not %s.", task, name,
        describe_value(value)), argument = name, task = task)
    }
    if (anyNA(args[[name]], recursive = TRUE)) {
      hfbridge_abort("invalid_argument", sprintf("%s: `%s` must not be NA, got %s.", task, name,
                                                 describe_value(args[[name]])),
                     argument = name, task = task, value = "NA")
    }
    if (length(not_utf8(unlist(args[[name]])))) {
      hfbridge_abort("invalid_argument", sprintf("%s: `%s` is not valid UTF-8: %s", task, name,
                                                 to_utf8_advice), argument = name, task = task)
    }
  }
  lapply(args, function(x) if (is.character(x) && length(x) > 1L) as.list(x) else x)
}

# A call's arguments replace the defaults of the same name, whole (modifyList() would keep the
# default's elements where a call gives an unnamed list, such as candidate_labels).
pipeline_merge_args <- function(defaults, args) {
  defaults[names(args)] <- args
  defaults
}

# question = and context = (one context for all questions is recycled), or a data frame.
pipeline_qa_inputs <- function(inputs, args) {
  question <- args$question
  context <- args$context
  if (is.data.frame(inputs) || (is.list(inputs) && !is.null(inputs$question))) {
    question <- inputs$question
    context <- inputs$context
  } else if (!is.null(inputs)) {
    question <- inputs
  }
  if (is.null(question) || is.null(context)) {
    hfbridge_abort("invalid_argument", paste0(
      "question-answering needs question = and context =, e.g. qa(question = \"Who?\", ",
      "context = \"Alice lives in Berlin.\"), or a data frame with those columns."),
      argument = "context")
  }
  question <- check_texts(unlist(question, use.names = FALSE), "question")
  context <- check_texts(unlist(context, use.names = FALSE), "context")
  if (length(context) == 1L) context <- rep_len(context, length(question))
  if (length(context) != length(question)) {
    hfbridge_abort("invalid_argument", sprintf(
      "Give one context, or one per question (%d questions, %d contexts).", length(question),
      length(context)), argument = "context")
  }
  list(question = question, context = context)
}

# A dict of equal-length columns (numpy arrays, lists of str) as a data frame.
pipeline_frame <- function(cols) {
  cols <- lapply(cols, function(x) {
    if (is.list(x)) return(as.character(unlist(x, use.names = FALSE)))
    as.vector(x)
  })
  as.data.frame(cols, stringsAsFactors = FALSE, optional = TRUE)
}

# Stacked token vectors of several texts (values, lengths, tokens) as a list of matrices, or of
# token x hidden x layer arrays when values has three dims.
pipeline_matrices <- function(res) {
  values <- res$values
  lengths <- as.integer(res$lengths)
  tokens <- as.character(unlist(res$tokens, use.names = FALSE))
  ends <- cumsum(lengths)
  three <- length(dim(values)) == 3L
  lapply(seq_along(lengths), function(i) {
    rows <- seq_len(lengths[i]) + ends[i] - lengths[i]
    m <- if (three) values[rows, , , drop = FALSE] else values[rows, , drop = FALSE]
    if (length(tokens) == nrow(values)) {
      dimnames(m) <- c(list(tokens[rows]), rep(list(NULL), length(dim(m)) - 1L))
    }
    m
  })
}

# Whether Python has loaded any model (without starting Python).
pipeline_python_loaded <- function() {
  # diffusion: text_to_image(); vision: embed_image() (issue 24); chat: hf_chat(model)
  any(c("pipeline", "embed", "models", "generation", "diffusion", "vision", "chat") %in%
        names(.hfb$modules))
}
