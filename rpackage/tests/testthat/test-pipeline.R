# pipeline() against transformers itself: the tiny task models of pybridge.fixtures.task_models
# are published on the test mirror, and each result is compared with the transformers pipeline
# called in Python (through reticulate) on the same folder and the same inputs.

# Tiny models gain nothing from threads and lose a lot on a busy 2-core machine.
local_one_thread <- function(env = parent.frame()) {
  torch <- hfbridge:::pybridge_module("models")$import_torch()
  before <- torch$get_num_threads()
  torch$set_num_threads(1L)
  withr::defer(torch$set_num_threads(before), envir = env)
}

py_pipeline <- function(task, folder) {
  reticulate::import("transformers")$pipeline(task, model = folder, device = "cpu")
}

texts <- c("This course is excellent.", "The explanation was very confusing.",
           "Alice lives in Berlin and works for Acme.", "Hello world, this is a test.")

test_that("the seed's classifier: default model, a list of strings in, labels out", {
  local_hub()
  local_one_thread()
  fx <- task_model_fixtures()
  classifier <- pipeline("sentiment-analysis")
  res <- classifier(list("This course is excellent.", "The explanation was very confusing."))
  expect_s3_class(res, "data.frame")
  expect_named(res, c("text_id", "text", "label", "score"))
  expect_identical(res$text_id, 1:2)
  expect_identical(res$label, c("POSITIVE", "NEGATIVE"))
  ref <- py_pipeline("sentiment-analysis", fx$folders$sentiment)(
    list("This course is excellent.", "The explanation was very confusing."))
  expect_identical(res$label, vapply(ref, function(r) r$label, ""))
  expect_equal(res$score, vapply(ref, function(r) r$score, 0), tolerance = 1e-5)
  expect_identical(classifier(c("This course is excellent.",
                                "The explanation was very confusing.")), res)
  expect_identical(attr(classifier, "model"),
                   "distilbert/distilbert-base-uncased-finetuned-sst-2-english")
})

test_that("a pipeline prints its task, model, revision and device, never the token", {
  local_hub()
  fx <- task_model_fixtures()
  p <- pipeline("sentiment-analysis", fx$ids$sentiment, token = "hf_secretsecret1234")
  out <- capture.output(print(p))
  expect_match(out[1], "sentiment-analysis")
  expect_true(any(grepl(fx$ids$sentiment, out, fixed = TRUE)))
  expect_true(any(grepl("revision: main", out)) && any(grepl("device:   cpu", out)))
  expect_false(any(grepl("secret", out)))
  expect_false(any(grepl("secret", unlist(get("spec", environment(p))))))  # not kept either
  expect_s3_class(p, "hfbridge_pipeline")
})

test_that("text-classification: top_k rows per text, chunks keep text ids, as Python", {
  local_hub()
  local_one_thread()
  fx <- task_model_fixtures()
  p <- pipeline("text-classification", fx$ids$sentiment)
  many <- rep(texts, length.out = 150)  # three chunks of up to 64 texts
  res <- p(many, top_k = 2, quiet = TRUE)
  expect_identical(nrow(res), 300L)
  expect_identical(res$text_id, rep(1:150, each = 2))
  expect_identical(res$text, rep(many, each = 2))
  ref <- py_pipeline("text-classification", fx$folders$sentiment)(as.list(many), top_k = 2L)
  flat <- unlist(ref, recursive = FALSE)
  expect_identical(res$label, vapply(flat, function(r) r$label, ""))
  expect_equal(res$score, vapply(flat, function(r) r$score, 0), tolerance = 1e-5)
  batched <- pipeline("text-classification", fx$ids$sentiment, batch_size = 8)
  expect_equal(batched(many, top_k = 2, quiet = TRUE)$score, res$score, tolerance = 1e-5)
})

test_that("zero-shot-classification as Python, with default arguments set at creation", {
  local_hub()
  local_one_thread()
  fx <- task_model_fixtures()
  labels <- c("travel", "cooking", "work")
  p <- pipeline("zero-shot-classification", fx$ids$nli, candidate_labels = labels)
  for (multi in c(FALSE, TRUE)) {
    res <- p(texts, multi_label = multi)
    expect_named(res, c("text_id", "label", "score"))
    ref <- py_pipeline("zero-shot-classification", fx$folders$nli)(
      as.list(texts), candidate_labels = as.list(labels), multi_label = multi)
    expect_identical(res$text_id, rep(seq_along(texts), each = 3L))
    expect_identical(res$label, unlist(lapply(ref, function(r) unlist(r$labels))))
    expect_equal(res$score, unlist(lapply(ref, function(r) unlist(r$scores))), tolerance = 1e-5)
  }
})

test_that("ner: 1-based inclusive offsets that substr() understands", {
  local_hub()
  local_one_thread()
  fx <- task_model_fixtures()
  ner <- pipeline("ner", fx$ids$ner)
  for (strategy in c("none", "simple")) {
    res <- ner(texts, aggregation_strategy = strategy)
    key <- if (strategy == "none") "entity" else "entity_group"
    expect_named(res, c("text_id", key, "score", "word", "start", "end"))
    ref <- py_pipeline("token-classification", fx$folders$ner)(
      as.list(texts), aggregation_strategy = strategy)
    flat <- unlist(ref, recursive = FALSE)
    expect_identical(res[[key]], vapply(flat, function(r) r[[key]], ""))
    expect_equal(res$score, vapply(flat, function(r) r$score, 0), tolerance = 1e-5)
    py_text <- vapply(seq_along(flat), function(i) {
      substring(texts[res$text_id[i]], flat[[i]]$start + 1L, flat[[i]]$end)
    }, "")
    expect_identical(substr(texts[res$text_id], res$start, res$end), py_text)
    expect_type(res$start, "integer")
  }
})

test_that("fill-mask: 0-based token ids and scores as Python", {
  local_hub()
  local_one_thread()
  fx <- task_model_fixtures()
  masked <- c("Paris is the [MASK] of France.", "The cat sat on the [MASK].")
  res <- pipeline("fill-mask", fx$ids$fill_mask)(masked, top_k = 3)
  expect_named(res, c("text_id", "mask", "token_id", "token_str", "score", "sequence"))
  expect_identical(res$mask, rep(1L, 6))
  flat <- unlist(py_pipeline("fill-mask", fx$folders$fill_mask)(as.list(masked), top_k = 3L),
                 recursive = FALSE)
  expect_identical(res$token_id, vapply(flat, function(r) as.integer(r$token), 0L))
  expect_identical(res$token_str, vapply(flat, function(r) r$token_str, ""))
  expect_identical(res$sequence, vapply(flat, function(r) r$sequence, ""))
  expect_equal(res$score, vapply(flat, function(r) r$score, 0), tolerance = 1e-5)
})

test_that("text-generation: the same seed gives Python's text, across chunks too", {
  local_hub()
  local_one_thread()
  fx <- task_model_fixtures()
  gen <- pipeline("text-generation", fx$ids$gpt2)
  prompts <- rep(c("Once upon a time", "The weather is", "Hello"), length.out = 70)
  res <- gen(prompts, max_new_tokens = 3, do_sample = TRUE, top_k = 20, seed = 42,
             quiet = TRUE)
  expect_named(res, c("text_id", "prompt", "generated_text"))
  expect_identical(res$prompt, prompts)
  reticulate::import("transformers")$set_seed(42L)
  ref <- py_pipeline("text-generation", fx$folders$gpt2)(
    as.list(prompts), max_new_tokens = 3L, do_sample = TRUE, top_k = 20L)
  expect_identical(res$generated_text,
                   vapply(ref, function(r) r[[1]]$generated_text, ""))
  again <- gen(prompts[1:3], max_new_tokens = 3, do_sample = TRUE, top_k = 20, seed = 42)
  expect_identical(again$generated_text, res$generated_text[1:3])
  two <- gen("Hello", max_new_tokens = 3, do_sample = TRUE, num_return_sequences = 2, seed = 1)
  expect_identical(two$text_id, c(1L, 1L))
})

test_that("summarization, translation and text2text-generation as generate() in Python", {
  # transformers 4's pipelines search 4 beams unless the model's generation config says otherwise
  local_hub()
  local_one_thread()
  fx <- task_model_fixtures()
  tr <- reticulate::import("transformers")
  tok <- tr$AutoTokenizer$from_pretrained(fx$folders$t5)
  model <- tr$AutoModelForSeq2SeqLM$from_pretrained(fx$folders$t5)
  reference <- function(prefix) {
    vapply(texts, function(t) {
      ids <- tok(paste0(prefix, t), return_tensors = "pt")
      out <- model$generate(input_ids = ids$input_ids, attention_mask = ids$attention_mask,
                            max_new_tokens = 5L, num_beams = 4L)
      tok$batch_decode(out, skip_special_tokens = TRUE, clean_up_tokenization_spaces = FALSE)[[1]]
    }, "", USE.NAMES = FALSE)
  }
  cases <- list(c("summarization", "summarize: "),
                c("translation_en_to_fr", "translate English to French: "),
                c("text2text-generation", ""))
  for (case in cases) {
    res <- pipeline(case[1], fx$ids$t5)(texts, max_new_tokens = 5)
    expect_named(res, c("text_id", "generated_text"))
    expect_identical(res$text_id, seq_along(texts))
    expect_identical(res$generated_text, reference(case[2]))
  }
})

test_that("question-answering: question = and context =, or a data frame", {
  local_hub()
  local_one_thread()
  fx <- task_model_fixtures()
  qa <- pipeline("question-answering", fx$ids$qa)
  context <- "Alice lives in Berlin and works for Acme."
  res <- qa(question = c("Where does Alice live?", "Who works for Acme?"), context = context)
  expect_named(res, c("question", "context", "answer", "score", "start", "end"))
  expect_identical(res$context, rep(context, 2))
  expect_identical(substr(res$context, res$start, res$end), res$answer)
  py <- hfbridge:::pybridge_module("pipeline")$run(
    "question-answering", NULL, fx$folders$qa,
    args = list(question = list("Where does Alice live?", "Who works for Acme?"),
                context = context))
  expect_equal(res$score, as.numeric(py$score), tolerance = 1e-5)
  df <- data.frame(question = "Where does Alice live?", context = context)
  top <- qa(df, top_k = 3)
  expect_identical(nrow(top), 3L)
  expect_false(is.unsorted(rev(top$score)))
  expect_error(qa("Where?"), class = "hfbridge_error_invalid_argument")
})

test_that("feature-extraction gives token x hidden matrices equal to Python's", {
  local_hub()
  local_one_thread()
  fx <- task_model_fixtures()
  res <- pipeline("feature-extraction", fx$ids$bert)(texts[1:2])
  expect_type(res, "list")
  ref <- py_pipeline("feature-extraction", fx$folders$bert)(as.list(texts[1:2]),
                                                            return_tensors = TRUE)
  for (i in 1:2) {
    want <- ref[[i]]$numpy()
    expect_equal(unname(res[[i]]), want[1, , ], tolerance = 1e-5)
    expect_identical(rownames(res[[i]])[1], "[CLS]")
  }
  named <- pipeline("feature-extraction", fx$ids$bert)(c(a = texts[1], b = texts[2]))
  expect_named(named, c("a", "b"))
  expect_identical(unname(named), res)
})

test_that("unknown tasks and unusable models are classed 'unsupported' errors", {
  local_hub()
  fx <- task_model_fixtures()
  err <- expect_error(pipeline("image-classification", fx$ids$bert),
                      class = "hfbridge_error_unsupported")
  expect_match(conditionMessage(err), "sentiment-analysis")
  expect_match(conditionMessage(err), "question-answering")
  expect_true("text-generation" %in% pipeline_tasks())
  expect_error(pipeline("fill-mask", fx$ids$gpt2), class = "hfbridge_error_unsupported")
  expect_error(pipeline("summarization", fx$ids$bert), class = "hfbridge_error_unsupported")
})

test_that("a corrupt file in a model folder is an invalid_file error that names it", {
  fx <- task_model_fixtures()
  corrupt <- function(name, change) {
    folder <- withr::local_tempdir(.local_envir = parent.frame(2))
    file.copy(list.files(fx$folders$sentiment, full.names = TRUE), folder)
    path <- file.path(folder, name)
    writeBin(change(readBin(path, "raw", file.size(path))), path)
    folder
  }
  cases <- list(
    config.json = function(b) b[seq_len(length(b) %/% 2)],
    tokenizer.json = function(b) c(b[1:20], as.raw(0xff), b[-(1:20)]),
    model.safetensors = function(b) b[seq_len(length(b) - 10L)]
  )
  for (name in names(cases)) {
    folder <- corrupt(name, cases[[name]])
    err <- tryCatch(pipeline("sentiment-analysis", folder), error = identity)
    expect_s3_class(err, "hfbridge_error_invalid_file")
    expect_identical(err$filename, name)
    expect_match(conditionMessage(err), name, fixed = TRUE)
    expect_error(embed_text("hello", model = folder), class = "hfbridge_error_invalid_file")
  }
})

test_that("pickle-only repos are refused unless allow_pickle = TRUE", {
  local_hub()
  fx <- task_model_fixtures()
  err <- expect_error(pipeline("feature-extraction", fx$ids$pickle_only),
                      class = "hfbridge_error_pickle_weights")
  expect_identical(err$repo_id, fx$ids$pickle_only)
  expect_match(conditionMessage(err), "allow_pickle")
  p <- pipeline("feature-extraction", fx$ids$pickle_only, allow_pickle = TRUE)
  expect_identical(ncol(p("hello")[[1]]), 32L)
})

test_that("bad arguments are caught before Python", {
  local_hub()
  fx <- task_model_fixtures()
  p <- pipeline("sentiment-analysis", fx$ids$sentiment)
  expect_error(p(c("ok", NA)), class = "hfbridge_error_invalid_argument")
  expect_error(p("ok", 2), class = "hfbridge_error_invalid_argument")
  expect_error(pipeline(c("a", "b")), class = "hfbridge_error_invalid_argument")
  expect_error(pipeline("ner", batch_size = 0), class = "hfbridge_error_invalid_argument")
  expect_error(pipeline("sentiment-analysis", fx$ids$sentiment, revision = "nope"),
               class = "hfbridge_error_revision_not_found")
})

test_that("models load once per session, pipeline_cache_clear() frees them, offline works", {
  local_hub()
  fx <- task_model_fixtures()
  pipeline_cache_clear()
  expect_identical(nrow(pipeline_cache_info()), 0L)
  a <- pipeline("sentiment-analysis", fx$ids$sentiment)
  b <- pipeline("text-classification", fx$ids$sentiment)
  info <- pipeline_cache_info()
  expect_identical(info$kind, "pipeline:text-classification")
  expect_identical(info$hits, 1L)
  expect_identical(pipeline_cache_clear(), 1L)
  withr::local_envvar(HF_HUB_OFFLINE = "1", HF_ENDPOINT = "http://127.0.0.1:9")
  offline <- pipeline("sentiment-analysis", fx$ids$sentiment)
  expect_identical(offline("This course is excellent.")$label, "POSITIVE")
})
