# bench/multimodal, text to image: text_to_image() from R against diffusers' own pipeline in
# Python (text_to_image_py.py) on the same folder, prompt, size and steps, one torch thread in
# both; medians of ROUNDS images after a warm-up (loading excluded), ratio R / Python. Two
# pipelines: the tests' tiny one (milliseconds per step: what R's per-step progress costs) and a
# larger random one with Stable Diffusion's layout (a fraction of a second per step).
# Usage: Rscript bench/multimodal/text_to_image.R ROUNDS STEPS
library(hfbridge)
args <- as.integer(commandArgs(TRUE))
rounds <- args[1]
steps <- args[2]
threads <- 1L
python <- Sys.getenv("RETICULATE_PYTHON")
dm <- reticulate::import("pybridge.fixtures.diffusion_models")
folders <- c(tiny = dm$ensure(names = list("sd"))$sd, sd_layout = dm$ensure_bench())
invisible(hfbridge:::py_call("models", "set_threads", threads))

median_time <- function(quiet, folder) {
  once <- function(seed) {
    system.time(text_to_image("a photo of a cat", folder, seed = seed, steps = steps,
                              quiet = quiet))[["elapsed"]]
  }
  once(0L)  # warm-up: loads the pipeline
  stats::median(vapply(seq_len(rounds), once, 0))
}

for (name in names(folders)) {
  folder <- folders[[name]]
  # A Python started from R inherits R's LD_LIBRARY_PATH, which breaks its imports: unset it.
  anchor_args <- c("-u", "LD_LIBRARY_PATH", python, "bench/multimodal/text_to_image_py.py",
                   folder, rounds, steps, threads)
  anchor <- jsonlite::fromJSON(system2("/usr/bin/env", anchor_args, stdout = TRUE,
                                       stderr = FALSE))$median
  stepped <- median_time(FALSE, folder)
  quiet <- median_time(TRUE, folder)
  for (mode in c("with progress", "quiet")) {
    ours <- if (mode == "quiet") quiet else stepped
    cat(sprintf(paste("result text-to-image %s (%d steps, %s): hfbridge %.3f s,",
                      "diffusers %.3f s, ratio %.2fx\n"),
                name, steps, mode, ours, anchor, ours / anchor))
  }
}
