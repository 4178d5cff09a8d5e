# bench/multimodal, images: pipeline("image-classification") and embed_image() from R against
# the same work written in Python (images_py.py, run in this process through reticulate, each
# round timing R then Python) on the same 500 JPEG files of 320 x 240, after a warm-up (loading
# excluded); medians of ROUNDS rounds and the ratio R / Python. Targets (issue 24):
# classification <= 1.10x; embed_image() <= 1.0x against Python's one-image-at-a-time
# get_image_features loop (embed_image() batches).
# Two sizes of model: the tests' tiny ones (the time is decoding and the bridge's overhead) and
# random ones in the shape of DeiT-tiny at 224 px (the model's share of the time is a real one).
# One torch thread: on a shared 2-core machine, two threads each waiting for a busy core made one
# tiny forward pass 30 times slower, on either side.
# Usage: Rscript bench/multimodal/images.R ROUNDS [N_IMAGES]
library(hfbridge)
args <- as.integer(commandArgs(TRUE))
rounds <- args[1]
n <- if (length(args) > 1) args[2] else 500L
invisible(hfbridge:::py_call("models", "set_threads", 1L))
anchors <- reticulate::import_from_path("images_py", path = "bench/multimodal")
paths <- unlist(anchors$make_images(file.path("bench", "data", sprintf("images_%d", n)), n))
vm <- reticulate::import("pybridge.fixtures.vision_models")
tiny <- vm$ensure(names = list("vit", "clip"))
big <- vm$ensure_bench()
models <- list(tiny = c(classify = tiny$vit, clip = tiny$clip),
               deit_tiny = c(classify = big$bench_vit, clip = big$bench_clip))

# Medians of R's and Python's times over the rounds, each round R first, then Python.
side_by_side <- function(ours, theirs) {
  ours(paths[1:8])
  theirs(paths[1:8])
  times <- vapply(seq_len(rounds), function(i) {
    c(r = system.time(ours(paths))[["elapsed"]], py = theirs(paths))
  }, c(r = 0, py = 0))
  apply(times, 1, stats::median)
}

report <- function(what, size, t, anchor, target) {
  cat(sprintf("result %s %s (%d images): hfbridge %.2f s, %s %.2f s, ratio %.2fx (target %s)\n",
              what, size, length(paths), t[["r"]], anchor, t[["py"]], t[["r"]] / t[["py"]],
              target))
}

for (size in names(models)) {
  m <- models[[size]]
  classify <- pipeline("image-classification", m[["classify"]], quiet = TRUE)
  t <- side_by_side(function(p) classify(p), anchors$classify_anchor(m[["classify"]]))
  report("image-classification", size, t, "transformers", "<= 1.10x")
  embed <- function(p) embed_image(p, m[["clip"]], batch_size = 32, quiet = TRUE)
  t <- side_by_side(embed, anchors$clip_anchor(m[["clip"]]))
  report("embed_image", size, t, "get_image_features loop", "<= 1.0x")
}
