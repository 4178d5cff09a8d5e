# Runs every ```r block of README.md, in order, against a mirror over the demo store.
# Usage: Rscript readme_blocks.R README.md STORE HF_HOME. Prints "BLOCK OK n" or "BLOCK ERROR n".
args <- commandArgs(trailingOnly = TRUE)
library(hfbridge)
MIRROR <- hub_mirror_start(args[2])
Sys.setenv(HF_ENDPOINT = MIRROR$url, HF_HOME = args[3])
lines <- readLines(args[1])
starts <- which(lines == "```r")
ends <- which(lines == "```")
blocks <- lapply(starts, function(s) lines[(s + 1):(min(ends[ends > s]) - 1)])
setwd(tempdir())
for (i in seq_along(blocks)) {
  # Stand-ins for the README's placeholders (a block may have emptied the cache before).
  path <- hub_download("gpt2", "model.safetensors", quiet = TRUE)
  code <- blocks[[i]]
  code <- sub('^store <- "/srv/hub"', "store <- file.path(tempdir(), 'store2')", code)
  code <- sub('"path/to/saved/model"', 'dirname(hub_download("gpt2", "config.json"))', code,
              fixed = TRUE)
  if (any(grepl("hub_push_model", code, fixed = TRUE))) {
    # The publishing block: the mirror lets its placeholder token write; its local files.
    writeLines('{"write": ["hf_..."]}', file.path(args[2], "mirror.json"))
    dir.create("my-model", showWarnings = FALSE)
    writeLines('{"model_type": "gpt2"}', file.path("my-model", "config.json"))
    writeLines("# Notes", "notes.md")
  }
  if (any(grepl("corpus", code, fixed = TRUE))) {
    # The Large corpora blocks: a small corpus, 2 local workers for 4, and no Slurm here: the
    # batchtools plan becomes sequential (its template's parse is tested in test-parallel.R).
    corpus <- rep(c("The cat sat on the mat.", "A dog ran in the park.", "Rain fell all day."), 20)
    code <- sub("workers = 4)", "workers = 2)", code, fixed = TRUE)
    slurm <- grep("batchtools_slurm", code, fixed = TRUE)
    if (length(slurm)) {
      stopifnot(nzchar(system.file("batchtools", "slurm.tmpl", package = "hfbridge")))
      end <- slurm[1] + which(grepl("))$", code[slurm[1]:length(code)]))[1] - 1
      code <- c(code[seq_len(slurm[1] - 1)], "plan(sequential)", code[-seq_len(end)])
    }
  }
  ok <- tryCatch({
    eval(parse(text = code), envir = globalenv())
    TRUE
  }, error = function(e) {
    cat("BLOCK ERROR", i, class(e)[1], conditionMessage(e), "\n")
    FALSE
  })
  Sys.setenv(HF_ENDPOINT = MIRROR$url)  # the mirror block points HF_ENDPOINT at its own mirror
  if (ok) cat("BLOCK OK", i, "\n")
}
future::plan(future::sequential)
hub_mirror_stop(MIRROR)
