# The seeds' tokenizer form against Python's encode_batch, every field of every encoding read,
# with all-MiniLM's WordPiece tokenizer, interleaved in one R process:
#   (a) hfbridge: batch <- tokenizer$encode_batch(texts); lapply(batch, function(x) x$ids),
#       timed from the R character vector to the finished list of hfbridge_encoding objects;
#   (b) Python: tokenizers' encode_batch, then every field of every encoding read (ids, tokens,
#       offsets, attention_mask, type_ids, special_tokens_mask, word_ids, sequence_ids,
#       overflowing), timed inside Python (the texts are already a Python list).
# Padding is off on both sides. Prints medians of RUNS rounds and the ratio (a) / (b).
args <- commandArgs(trailingOnly = TRUE)
texts_file <- if (length(args) >= 1) args[[1]] else "bench/data/tokenizer_texts_20000.txt"
runs <- if (length(args) >= 2) as.integer(args[[2]]) else 5L

if (identical(Sys.getenv("HFBRIDGE_BENCH_LOAD_ALL"), "1")) {
  pkgload::load_all("rpackage", quiet = TRUE)
} else {
  library(hfbridge)
}

texts <- readLines(texts_file, encoding = "UTF-8")
folder <- reticulate::import("pybridge.fixtures.tokenizers")$minilm_folder()
path <- file.path(folder, "tokenizer.json")
cat(sprintf("%d texts, tokenizer %s\n", length(texts), path))

tokenizer <- tokenizer_from_file(path)
tokenizer$no_padding()
py_tok <- reticulate::import("tokenizers")$Tokenizer$from_file(path)
py_tok$no_padding()
reticulate::py_run_string("
import time

def bench_every_field(tok, texts):
    t0 = time.perf_counter()
    encodings = tok.encode_batch(texts)
    n = 0
    for e in encodings:
        (e.ids, e.tokens, e.offsets, e.attention_mask, e.type_ids, e.special_tokens_mask,
         e.word_ids, e.sequence_ids, e.overflowing)
        n += len(e.ids)
    return time.perf_counter() - t0, n
")
main <- reticulate::py_run_string("", convert = FALSE)
py_texts <- reticulate::r_to_py(texts)

elapsed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  force(expr)
  proc.time()[["elapsed"]] - t0
}

# Same ids as Python's, checked once on the first 2000 texts.
check <- texts[1:2000]
seed_ids <- lapply(tokenizer$encode_batch(check), function(x) x$ids)
direct <- lapply(py_tok$encode_batch(check), function(e) as.integer(e$ids))
stopifnot(identical(seed_ids, direct))

times <- list()
add <- function(name, value) times[[name]] <<- c(times[[name]], value)
A <- "(a) R $encode_batch() + lapply $ids"
B <- "(b) Python encode_batch, every field read"
steps <- list(
  a = function() {
    add(A, elapsed({
      batch <- tokenizer$encode_batch(texts)
      ids <<- lapply(batch, function(x) x$ids)
    }))
  },
  b = function() {
    res <- reticulate::py_to_r(main$bench_every_field(py_tok, py_texts))
    n_ids <<- res[[2]]
    add(B, res[[1]])
  }
)
# The machine is shared: alternate the order (ABBA) so that a drifting load hits both sides
# alike, and also report the median of the ratios of adjacent runs.
for (round in seq_len(runs)) {
  for (step in if (round %% 2 == 1) c("a", "b") else c("b", "a")) steps[[step]]()
  cat(sprintf("round %d done\n", round))
}
stopifnot(sum(lengths(ids)) == n_ids)

med <- vapply(times, stats::median, numeric(1))
cat(sprintf("\n%d texts, %d tokens, medians of %d runs (seconds) and ratio to (b):\n",
            length(texts), n_ids, runs))
for (name in names(med)) {
  cat(sprintf("  %-45s %7.2f s   %5.2fx\n", name, med[[name]], med[[name]] / med[[B]]))
}
target <- 1.3
ratio <- med[[A]] / med[[B]]
paired <- stats::median(times[[A]] / times[[B]])
cat(sprintf("\nTarget: (a) <= %.2f x (b). Ratio of medians %.2f, median of paired ratios %.2f: %s\n",
            target, ratio, paired, if (max(ratio, paired) <= target) "met" else
              if (min(ratio, paired) <= target) "met on one of the two measures only" else "NOT met"))
