# Tokenizing 100k texts with all-MiniLM's WordPiece tokenizer, interleaved in one R process:
#   (a) hfbridge: $encode_ids() (ragged list of ids) and $encode_matrix() (padded matrices),
#       each timed from the R character vector to the finished R object;
#   (b) Python: tokenizers' encode_batch plus [e.ids for e in encodings], timed inside Python
#       (the texts are already a Python list), and the same with encode_batch_fast;
#   (c) reticulate directly: tok$encode_batch(texts) then lapply(encodings, function(e) e$ids).
# Padding is turned off on every side (all-MiniLM's tokenizer.json pads to 128), so every side
# produces the same ~3M ids. Prints medians of RUNS rounds and the ratios.
args <- commandArgs(trailingOnly = TRUE)
texts_file <- if (length(args) >= 1) args[[1]] else "bench/data/tokenizer_texts.txt"
runs <- if (length(args) >= 2) as.integer(args[[2]]) else 3L
skip_c <- identical(Sys.getenv("BENCH_SKIP_RETICULATE"), "1")

if (identical(Sys.getenv("HFBRIDGE_BENCH_LOAD_ALL"), "1")) {
  pkgload::load_all("rpackage", quiet = TRUE)
} else {
  library(hfbridge)
}

texts <- readLines(texts_file, encoding = "UTF-8")
folder <- reticulate::import("pybridge.fixtures.tokenizers")$minilm_folder()
path <- file.path(folder, "tokenizer.json")
cat(sprintf("%d texts, tokenizer %s\n", length(texts), path))

tok <- tokenizer_from_file(path)
tok$no_padding()
py_tok <- reticulate::import("tokenizers")$Tokenizer$from_file(path)
py_tok$no_padding()
reticulate::py_run_string("
import time
from itertools import chain

def bench_python(tok, texts):
    t0 = time.perf_counter()
    encodings = tok.encode_batch(texts)
    ids = [e.ids for e in encodings]
    return time.perf_counter() - t0, sum(len(i) for i in ids)

def bench_python_fast(tok, texts):
    t0 = time.perf_counter()
    encodings = tok.encode_batch_fast(texts)
    ids = [e.ids for e in encodings]
    return time.perf_counter() - t0, sum(len(i) for i in ids)
")
main <- reticulate::py_run_string("", convert = FALSE)
py_texts <- reticulate::r_to_py(texts)

elapsed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  force(expr)
  proc.time()[["elapsed"]] - t0
}

# Same ids on every side, checked once on the first 2000 texts.
check <- texts[1:2000]
ragged <- tok$encode_ids(check)
direct <- lapply(py_tok$encode_batch(check), function(e) e$ids)
stopifnot(identical(ragged, lapply(direct, as.integer)))
m <- tok$encode_matrix(check)
stopifnot(identical(m$ids[2, seq_along(ragged[[2]])], ragged[[2]]))

times <- list()
add <- function(name, value) times[[name]] <<- c(times[[name]], value)
B <- "(b) Python encode_batch + ids"
RAGGED <- "(a) R $encode_ids() ragged"
MATRIX <- "(a) R $encode_matrix() padded"
steps <- list(
  b = function() {
    res <- reticulate::py_to_r(main$bench_python(py_tok, py_texts))
    n_ids <<- res[[2]]
    add(B, res[[1]])
  },
  ragged = function() add(RAGGED, elapsed(ids <<- tok$encode_ids(texts))),
  matrix = function() add(MATRIX, elapsed(mat <<- tok$encode_matrix(texts))),
  fast = function() add("(b') Python encode_batch_fast + ids",
                        reticulate::py_to_r(main$bench_python_fast(py_tok, py_texts))[[1]])
)
# The machine is shared: alternate the order of the steps (ABBA) so that a drifting load hits
# every side alike, and also report the median of the ratios of adjacent runs.
for (round in seq_len(runs)) {
  add("R -> Python conversion of the texts", elapsed(reticulate::r_to_py(texts)))
  order <- if (round %% 2 == 1) c("b", "ragged", "matrix", "fast") else c("fast", "matrix", "ragged", "b")
  for (step in order) steps[[step]]()
  if (!skip_c) {
    add("(c) reticulate encode_batch + lapply $ids",
        elapsed(direct <- lapply(py_tok$encode_batch(texts), function(e) e$ids)))
  }
  cat(sprintf("round %d done\n", round))
}
stopifnot(sum(lengths(ids)) == n_ids, sum(mat$attention_mask) == n_ids)

med <- vapply(times, stats::median, numeric(1))
base <- med[[B]]
cat(sprintf("\n%d texts, %d ids, medians of %d runs (seconds) and ratio to (b):\n",
            length(texts), n_ids, runs))
for (name in names(med)) {
  cat(sprintf("  %-45s %7.2f s   %5.2fx\n", name, med[[name]], med[[name]] / base))
}
target <- 1.15
cat("\nTarget: (a) <= 1.15 x (b).\n")
for (name in c(RAGGED, MATRIX)) {
  ratio <- med[[name]] / base
  paired <- stats::median(times[[name]] / times[[B]])
  cat(sprintf("%s / (b): ratio of medians %.2f, median of paired ratios %.2f: %s\n", name, ratio,
              paired, if (max(ratio, paired) <= target) "met" else if (min(ratio, paired) <= target)
                "met on one of the two measures only" else "NOT met"))
}
