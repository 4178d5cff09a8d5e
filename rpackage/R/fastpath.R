# The fast path of embed_text() and pipeline(): pybridge.fastpath converts and measures; R checks
# the choice, prints the quality record and warns when it is below the threshold.

#' The fast path: bf16 and int8 models, on torch or ONNX Runtime
#'
#' [embed_text()] and [pipeline()] (for `"feature-extraction"`, `"text-classification"` and
#' `"token-classification"`) take `backend` and `precision`. The default, `"torch"` and
#' `"fp32"`, is exact. The others trade a little accuracy for speed on CPUs that have the
#' instructions for them:
#'
#' * `backend = "torch", precision = "bf16"`: the weights in bfloat16, whose matrix products
#'   run on AMX (or AVX512-BF16). The fastest, and close to fp32.
#' * `backend = "torch", precision = "int8"`: torch's dynamic int8 quantization of the linear
#'   layers (VNNI). Often too lossy for sentence embeddings (it warns, see below).
#' * `backend = "onnx", precision = "fp32"`: the model exported to ONNX and run by ONNX Runtime
#'   with its fused transformer graph. Equal to fp32 up to rounding.
#' * `backend = "onnx", precision = "int8"`: that graph with int8 weights (dynamic
#'   quantization, per channel).
#'
#' The first use of a model converts it (for ONNX: the export, fusion and quantization) and
#' measures it against fp32 on 200 calibration texts: the cosine of each text's mean-pooled
#' hidden state (min and mean), and for a classifier the share of labels (per text, or per
#' token) that agree. The conversion and its measures are stored in
#' `<HF_HOME>/assets/hfbridge/fastpath/<repo folder>/<commit>/<head>-<backend>-<precision>/`
#' (`quality.json`, and `model.onnx` for ONNX), keyed by repository, commit, backend and
#' precision; a later session, offline too, reuses them without converting again. The folder is
#' not a repository, so [hub_cache_scan()] does not list it; delete it to convert again.
#'
#' A printed pipeline shows the measures; `attr(x, "fastpath")` of an embedding matrix holds
#' them. A conversion whose minimum cosine or label agreement is below 0.99 signals a warning of
#' class `hfbridge_warning_fastpath_quality` (with the fields `cosine_min` and `agreement`).
#' A precision the CPU has no instructions for, an architecture that cannot be exported to
#' ONNX, or a task without a fast path signals `hfbridge_error_unsupported`, whose field
#' `fallback` names what to use instead.
#'
#' @name fastpath
#' @family pipelines
#' @examplesIf hfbridge:::examples_ready()
#' texts <- c("The cat sat on the mat.", "A dog lay on the rug.")
#' e <- embed_text(texts, "sentence-transformers/all-MiniLM-L6-v2", precision = "bf16")
#' attr(e, "fastpath")$cosine_min
#' clf <- pipeline("sentiment-analysis", backend = "onnx", precision = "int8")
#' clf   # prints the measures
NULL

fastpath_choice <- function(backend, precision) {
  list(backend = check_choice(backend, c("torch", "onnx"), "backend"),
       precision = check_choice(precision, c("fp32", "bf16", "int8"), "precision"))
}

fastpath_exact <- function(fast) {
  identical(fast$backend, "torch") && identical(fast$precision, "fp32")
}

# A quality record from Python as a plain list (agreement NA for an embedding model).
fastpath_quality <- function(quality) {
  if (is.null(quality)) return(NULL)
  if (is.null(quality$agreement)) quality$agreement <- NA_real_
  quality
}

fastpath_warn <- function(quality, what) {
  if (is.null(quality) || isTRUE(quality$ok)) return(invisible())
  hfbridge_warn("fastpath_quality", sprintf(paste(
    "The %s %s model of %s is far from fp32: %s (threshold %.2f). Use precision = \"fp32\" or",
    "another backend if this matters."), quality$backend, quality$precision, what,
    fastpath_describe(quality), quality$threshold),
    cosine_min = quality$cosine_min, agreement = quality$agreement,
    backend = quality$backend, precision = quality$precision)
}

fastpath_describe <- function(quality) {
  text <- sprintf("cosine to fp32 min %.4f (mean %.4f)", quality$cosine_min, quality$cosine_mean)
  if (!is.na(quality$agreement)) {
    text <- sprintf("%s, labels agree %.1f%%", text, 100 * quality$agreement)
  }
  sprintf("%s on %d calibration texts", text, as.integer(quality$texts))
}

fastpath_format <- function(quality) {
  if (is.null(quality)) return(character())
  c(sprintf("  backend:  %s %s (%s)", quality$backend, quality$precision, quality$machinery),
    sprintf("  quality:  %s%s", fastpath_describe(quality),
            if (isTRUE(quality$ok)) "" else sprintf(" - below %.2f", quality$threshold)),
    sprintf("  stored:   %s", quality$folder))
}
