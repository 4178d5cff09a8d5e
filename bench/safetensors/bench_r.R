# One measured load in a fresh R process, so that the peak memory (VmHWM) belongs to that load;
# or, in mode "warm", loads one after the other in one long R session.
# Usage: Rscript bench_r.R MODE PATH [TAG]   (TAG prefixes the mode in the output: "small:warm")
# Modes (all give the same R arrays, except "reversed", whose dims are reversed):
#   hfbridge       safe_load_file(path): R allocates, Python fills it in one pass
#   hfbridge_reversed  safe_load_file(path, layout = "reversed"): the opt-in layout, no transpose
#   reticulate     import("safetensors.numpy")$load_file(path), converted by reticulate (b)
# The other layouts tried (each with safe_load_file's one-step heap growth):
#   fortran64      Python returns np.asfortranarray(t.astype(float64)), converted by reticulate
#   readbin_aperm  Python returns the raw bytes (bytearray -> raw); R: readBin(size = 4), aperm()
#   reversed       the same without aperm(): dims reversed (a possible opt-in layout)
#   open           safe_open(path) + one layer tensor (h.0.mlp.c_fc.weight, 768 x 3072),
#                  then a 10-row slice of wte.weight
#   warm           WARM_ROUNDS (default 5) rounds in this one session, each a gc() and a timed
#                  safe_load_file(path), and a gc() and a timed reticulate load (b), the order
#                  swapped every round; prints warm_hfbridge and warm_reticulate lines
# Prints: "result MODE SECONDS VMHWM_DELTA_BYTES GC_MAX_BYTES RESULT_BYTES CPU_SECONDS" (and
# "slice SECONDS"). CPU seconds (user + system of this process, Python included) show the cost
# apart from what other processes on a shared machine take.
args <- commandArgs(trailingOnly = TRUE)
mode <- args[1]
path <- normalizePath(args[2])
tag <- if (length(args) > 2) paste0(args[3], ":") else ""

if (nzchar(Sys.getenv("HFBRIDGE_LOAD_ALL"))) {
  pkgload::load_all(Sys.getenv("HFBRIDGE_LOAD_ALL"), quiet = TRUE)
} else {
  suppressPackageStartupMessages(library(hfbridge))
}

vm_hwm <- function() {
  line <- grep("^VmHWM", readLines("/proc/self/status"), value = TRUE)
  as.numeric(gsub("[^0-9]", "", line)) * 1024
}

reticulate::py_run_string("
import numpy as np
import safetensors.numpy
from safetensors import safe_open

def bench_fortran64(path):
    with safe_open(path, 'numpy') as f:
        return {k: np.asfortranarray(f.get_tensor(k), dtype=np.float64) for k in f.offset_keys()}

def bench_raw(path):
    with safe_open(path, 'numpy') as f:
        out = {}
        for k in f.offset_keys():
            t = f.get_tensor(k)
            out[k] = (bytearray(t.tobytes()), list(t.shape))
        return out
")
main <- reticulate::py

# The alternatives get the same one-step heap growth as safe_load_file(), so that the layouts
# are compared, not R's garbage collector.
reserve <- function() invisible(readBin(raw(0), "double", n = ceiling(1.25 * 995518464 / 8)))

load_readbin <- function(path, permute) {
  reserve()
  raw <- main$bench_raw(path)
  lapply(raw, function(entry) {
    bytes <- entry[[1]]
    shape <- as.integer(unlist(entry[[2]]))
    x <- readBin(bytes, "double", n = length(bytes) %/% 4, size = 4, endian = "little")
    if (length(shape) > 1) {
      dim(x) <- rev(shape)
      if (permute) x <- aperm(x)
    }
    x
  })
}

# Start Python and import everything the measured call needs, outside the timing.
tiny <- tempfile(fileext = ".safetensors")
safe_save_file(list(x = matrix(as.numeric(1:6), 2)), tiny, dtype = "float32")
invisible(safe_load_file(tiny))
h <- safe_open(tiny)
invisible(h$get_tensor("x"))
invisible(h$get_slice("x", 1, ))
h$close()
invisible(reticulate::import("safetensors.numpy")$load_file(tiny))
invisible(main$bench_fortran64(tiny))
invisible(load_readbin(tiny, TRUE))

result_bytes <- function(x) sum(vapply(x, function(t) as.numeric(length(t)) * 8, 1))

if (mode == "warm") {
  st <- reticulate::import("safetensors.numpy")
  loads <- list(hfbridge = function() safe_load_file(path),
                reticulate = function() st$load_file(path))
  for (round in seq_len(as.integer(Sys.getenv("WARM_ROUNDS", "5")))) {
    for (name in if (round %% 2) names(loads) else rev(names(loads))) {
      invisible(gc())
      t <- system.time(w <- loads[[name]]())
      cat(sprintf("result %swarm_%s %.4f - - %.0f %.4f\n", tag, name, t[["elapsed"]],
                  result_bytes(w), t[["user.self"]] + t[["sys.self"]]))
      rm(w)
    }
  }
  quit(save = "no")
}
invisible(gc(reset = TRUE))
before <- vm_hwm()
cpu <- 0
timed <- function(expr) {
  t <- system.time(expr)
  cpu <<- t[["user.self"]] + t[["sys.self"]]
  t[["elapsed"]]
}

if (mode == "hfbridge") {
  t <- timed(w <- safe_load_file(path))
} else if (mode == "hfbridge_reversed") {
  t <- timed(w <- safe_load_file(path, layout = "reversed"))
} else if (mode == "reticulate") {
  st <- reticulate::import("safetensors.numpy")
  t <- timed(w <- st$load_file(path))
} else if (mode == "fortran64") {
  t <- timed({
    reserve()
    w <- main$bench_fortran64(path)
  })
} else if (mode == "readbin_aperm") {
  t <- timed(w <- load_readbin(path, TRUE))
} else if (mode == "reversed") {
  t <- timed(w <- load_readbin(path, FALSE))
} else if (mode == "open") {
  t <- timed({
    h <- safe_open(path)
    w <- list(h$get_tensor("h.0.mlp.c_fc.weight"))
  })
  cpu_open <- cpu
  t_slice <- timed(s <- h$get_slice("wte.weight", 1:10, ))
  cpu <- cpu_open
  stopifnot(identical(dim(s), c(10L, 768L)))
  h$close()
  cat(sprintf("slice %.4f\n", t_slice))
} else {
  stop("unknown mode ", mode)
}
after <- vm_hwm()
g <- gc()
gc_max <- sum(g[, ncol(g)]) * 1048576  # the "max used" column, in Mb
if (mode %in% c("hfbridge", "reticulate", "fortran64", "readbin_aperm") && !nzchar(tag)) {
  stopifnot(identical(dim(w[["wte.weight"]]), c(50257L, 768L)))
}
cat(sprintf("result %s%s %.4f %.0f %.0f %.0f %.4f\n", tag, mode, t, after - before, gc_max,
            result_bytes(w), cpu))
