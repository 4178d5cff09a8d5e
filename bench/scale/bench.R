# Scale-out bench (see run.sh): all-MiniLM-L6-v2 embeddings of N texts, three ways in one run,
# interleaved by round: (1) one process with 2 torch threads, (2) multisession with 2 workers of
# 1 thread each, (3) sequential chunks in one process. Then the fixed costs of a worker (R and
# Python start, torch import, model load) and of a chunk, and the sizing model they give.
# Usage: Rscript bench/scale/bench.R TEXTS_FILE [ROUNDS]
suppressPackageStartupMessages({
  library(hfbridge)
  library(future)
})
args <- commandArgs(trailingOnly = TRUE)
texts <- readLines(args[1], encoding = "UTF-8")
rounds <- if (length(args) > 1) as.integer(args[2]) else 1L
n <- length(texts)
chunks <- 8L
chunk_size <- ceiling(n / chunks)
model <- reticulate::import("pybridge.fixtures.tokenizers")$minilm_folder()
seconds <- function(expr) unname(system.time(expr)[["elapsed"]])
cores <- parallelly::availableCores()
cat(sprintf("%d texts, all-MiniLM-L6-v2, %d cores, %d round(s), chunks of %d\n", n, cores,
            rounds, chunk_size))

# The leader's own model load (Python already started by the line above).
load_leader <- seconds(embed_text("warm up", model, quiet = TRUE))
invisible(hfbridge:::py_call("models", "set_threads", 2L))

# Workers: start, then a 1-text chunk on each (Python, torch, model load), then the same warm.
plan(sequential)
start_workers <- seconds(plan(multisession, workers = 2))
cold <- seconds(embed_text(c("warm up", "warm up"), model, chunk_size = 1, quiet = TRUE))
warm <- seconds(embed_text(c("warm up", "warm up"), model, chunk_size = 1, quiet = TRUE))
load_worker <- cold - warm  # the two workers load side by side
# Per-chunk overhead: the same 64 short texts as 64 chunks and as 2, on warm workers.
short <- rep("warm up", 64)
many <- seconds(embed_text(short, model, chunk_size = 1, batch_size = 1, quiet = TRUE))
two <- seconds(embed_text(short, model, chunk_size = 32, batch_size = 1, quiet = TRUE))
per_chunk <- (many - two) / (62 / 2)

plan(sequential)
times <- list(one = numeric(), multisession = numeric(), chunks = numeric())
for (r in seq_len(rounds)) {
  plan(sequential)
  times$one <- c(times$one, seconds(ref <- embed_text(texts, model, quiet = TRUE)))
  times$chunks <- c(times$chunks, seconds(seq_chunks <- embed_text(texts, model,
                                                                   chunk_size = chunk_size,
                                                                   quiet = TRUE)))
  plan(multisession, workers = 2)
  embed_text(c("warm up", "warm up"), model, chunk_size = 1, quiet = TRUE)  # load, not timed
  times$multisession <- c(times$multisession, seconds(par <- embed_text(
    texts, model, parallel = TRUE, chunk_size = chunk_size, quiet = TRUE)))
  stopifnot(identical(par, seq_chunks), isTRUE(all.equal(par, ref, tolerance = 1e-6)))
}
plan(sequential)

med <- vapply(times, stats::median, numeric(1))
rate_one <- n / med[["one"]]
cat(sprintf("\n%-44s %9s %9s %8s\n", "", "median s", "texts/s", "ratio"))
row <- function(label, t) cat(sprintf("%-44s %9.2f %9.0f %8.2f\n", label, t, n / t,
                                      t / med[["one"]]))
row("1. one process, 2 torch threads", med[["one"]])
row("2. multisession, 2 workers x 1 thread (warm)", med[["multisession"]])
row("3. sequential chunks, one process", med[["chunks"]])
cat(sprintf("\nfixed costs: start 2 workers %.2f s; Python + torch + model load per worker %.2f s",
            start_workers, load_worker))
cat(sprintf(" (leader's model load %.2f s); per chunk %.3f s\n", load_leader, per_chunk))

# Sizing: T(N, W) = start + load + N / (W * c * r) + (N / chunk) * per_chunk / W, with c the
# cores per worker and r the throughput of one core, measured apart: one process with one torch
# thread on the first 2000 texts (one process with 2 threads gains less than 2x from its
# second core, so r from it would undersell the workers).
plan(sequential)
sample <- texts[seq_len(min(n, 2000L))]
before <- hfbridge:::py_call("models", "set_threads", 1L)
r_core <- length(sample) / seconds(embed_text(sample, model, quiet = TRUE))
invisible(hfbridge:::py_call("models", "set_threads", before))
predict <- function(N, W, c) start_workers + load_worker + N / (W * c * r_core) +
  ceiling(N / chunk_size) * per_chunk / W
cold_total <- start_workers + load_worker + med[["multisession"]]
cat(sprintf(paste0("\nsizing: %.0f texts/s per core (one thread); predicted multisession ",
                   "wall time for %d texts on 2 workers x 1 core: %.1f s, measured %.1f s ",
                   "(start + load + run)\n"),
            r_core, n, predict(n, 2, 1), cold_total))
fixed <- start_workers + load_worker
if (med[["multisession"]] < med[["one"]]) {
  # N * t_one / n = fixed + N * t_multi / n
  cat(sprintf("multisession pays off here above about %.0f texts (its %.1f s of start and load).\n",
              fixed * n / (med[["one"]] - med[["multisession"]]), fixed))
} else {
  cat(paste0("multisession does not pay off on this 2-core machine: 2 workers of 1 thread are ",
             "no faster than one process of 2 threads, so no input size recovers its start and ",
             "load. It pays off when the workers bring cores of their own (more machines).\n"))
}
for (W in c(4L, 16L, 64L)) {
  cat(sprintf("  cluster of %2d workers x 4 cores: 1e6 texts in about %.0f s, 1e7 in %.0f s\n",
              W, predict(1e6, W, 4), predict(1e7, W, 4)))
}
