# Scale-out through one server (see run.sh): all-MiniLM-L6-v2 embeddings of N texts by 4 future
# workers, two ways, start-up included: (1) each worker loads the model (embed_text(parallel =
# TRUE)); (2) one hf_serve() server loads it once and the workers send it their chunks
# (embed_text(endpoint = url)). Prints both times and their ratio.
# Usage: Rscript bench/serve/scale.R TEXTS_FILE [WORKERS]
suppressPackageStartupMessages({
  library(hfbridge)
  library(future)
})
args <- commandArgs(trailingOnly = TRUE)
texts <- readLines(args[1], encoding = "UTF-8")
workers <- if (length(args) > 1) as.integer(args[2]) else 4L
model <- reticulate::import("pybridge.fixtures.models")$minilm_folder()
chunks <- split(texts, cut(seq_along(texts), workers, labels = FALSE))
seconds <- function(expr) unname(system.time(expr)[["elapsed"]])
cat(sprintf("%d texts, all-MiniLM-L6-v2, %d workers, %d cores\n", length(texts), workers,
            parallelly::availableCores()))

direct <- seconds({
  plan(multisession, workers = workers)
  own <- embed_text(texts, model, normalize = TRUE, parallel = TRUE,
                    chunk_size = length(chunks[[1]]), quiet = TRUE)
})
plan(sequential)
served <- seconds({
  srv <- hf_serve(c("feature-extraction" = model), max_inputs = 500L, timeout = 600)
  plan(multisession, workers = workers)
  url <- srv$url
  parts <- lapply(chunks, function(chunk) {
    future(hfbridge::embed_text(chunk, model, normalize = TRUE, endpoint = url), seed = NULL)
  })
  via <- do.call(rbind, lapply(parts, value))
})
plan(sequential)
hf_serve_stop(srv)
stopifnot(isTRUE(all.equal(unname(via), unname(own), tolerance = 1e-5)))
cat(sprintf("result %d workers each loading the model: %.1f s\n", workers, direct))
cat(sprintf("result %d workers sending to one server:  %.1f s\n", workers, served))
cat(sprintf("result one server / own models: %.2fx\n", served / direct))
