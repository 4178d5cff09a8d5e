# The soak test's R side (tests/test_soak.py): one R session calls the verbs over and over, in
# rounds, and samples its RSS (/proc/self/status), R's heap (gc()), its open files and the maps
# of the weights file after each round.
# The same probe texts are classified and embedded before and after the rounds (OUT.tsv.json).
# Usage: Rscript soak.R ROUNDS WARMUP OUT.tsv, with HF_ENDPOINT and HF_HOME set and these repos
# on the mirror: SOAK_CLASSIFIER (text classification), SOAK_EMBEDDER (a BERT with a tokenizer
# and model.safetensors). Every round makes 20 pipeline calls, 20 embed_text() calls of 1 to 50
# texts, 5 cached hub_download()s, and opens and drops 2 tokenizers and 2 safetensors handles.
args <- commandArgs(trailingOnly = TRUE)
rounds <- as.integer(args[1])
warmup <- as.integer(args[2])
out_file <- args[3]
classifier_id <- Sys.getenv("SOAK_CLASSIFIER")
embedder_id <- Sys.getenv("SOAK_EMBEDDER")
library(hfbridge)

words <- c("the", "food", "was", "excellent", "confusing", "cat", "sat", "on", "mat", "Berlin",
           "lovely", "weather", "today", "slow", "service", "great", "job", "R", "users")
set.seed(1)
sentence <- function() paste(sample(words, sample(3:12, 1), replace = TRUE), collapse = " ")
pool <- vapply(seq_len(500), function(i) sentence(), "")
files <- c("config.json", "tokenizer.json", "model.safetensors")

classify <- pipeline("text-classification", classifier_id, quiet = TRUE)
weights <- hub_download(embedder_id, "model.safetensors", quiet = TRUE)
first_tensor <- names(safe_load_file(weights))[1]

one_round <- function(r) {
  for (i in 1:20) {
    out <- classify(pool[(r * 20 + i) %% 500 + 1])
    stopifnot(nrow(out) == 1L)
  }
  for (i in 1:20) {
    n <- sample(50, 1)
    e <- embed_text(sample(pool, n), embedder_id, quiet = TRUE)
    stopifnot(nrow(e) == n)
  }
  for (i in 1:5) {
    stopifnot(file.exists(hub_download(embedder_id, files[(r + i) %% 3 + 1], quiet = TRUE)))
  }
  for (i in 1:2) {
    tok <- tokenizer_from_pretrained(embedder_id)
    stopifnot(length(tok$encode(pool[i])$ids) > 2L)
    h <- safe_open(weights)
    stopifnot(length(h$get_tensor(first_tensor)) > 0L)
    if (i == 1L) {  # one of each closed, the other left to the garbage collector
      tok$close()
      h$close()
    }
    rm(tok, h)
  }
}

rss_mb <- function() {
  status <- readLines("/proc/self/status")
  as.numeric(sub("^VmRSS:\\s*([0-9]+) kB$", "\\1", grep("^VmRSS:", status, value = TRUE))) / 1024
}
heap_mb <- function() sum(gc(full = TRUE)[, 2])  # Ncells and Vcells in use, in MB
# Open files on disk, and sockets apart: pooled connections to the mirror come and go, and are
# bounded by the pool rather than by the number of calls.
fd_targets <- function() Sys.readlink(list.files("/proc/self/fd", full.names = TRUE))
open_files <- function() sum(startsWith(fd_targets(), "/"), na.rm = TRUE)
open_sockets <- function() sum(startsWith(fd_targets(), "socket:"), na.rm = TRUE)
# Maps of the weights file still in place (the dropped handles' maps must be gone after gc()).
weights_maps <- function() {
  sum(grepl(normalizePath(weights), readLines("/proc/self/maps"), fixed = TRUE))
}

probe <- function() {
  texts <- pool[1:3]
  list(classified = classify(texts), embedded = embed_text(texts, embedder_id, quiet = TRUE))
}

started <- proc.time()[["elapsed"]]
for (r in seq_len(warmup)) one_round(r)
before <- probe()
samples <- data.frame(round = seq_len(rounds), rss_mb = NA_real_, heap_mb = NA_real_,
                      files = NA_integer_, maps = NA_integer_, sockets = NA_integer_)
for (r in seq_len(rounds)) {
  one_round(warmup + r)
  samples$heap_mb[r] <- heap_mb()
  samples$rss_mb[r] <- rss_mb()
  samples$files[r] <- open_files()
  samples$maps[r] <- weights_maps()
  samples$sockets[r] <- open_sockets()
}
utils::write.table(samples, out_file, sep = "\t", row.names = FALSE, quote = FALSE)
jsonlite::write_json(list(texts = pool[1:3], before = before, after = probe()),
                     paste0(out_file, ".json"), digits = NA, dataframe = "columns")
cat(sprintf("SOAK DONE %d rounds in %.1f s\n", warmup + rounds,
            proc.time()[["elapsed"]] - started))
