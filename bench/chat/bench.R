# bench/chat: hf_chat() from R against Python's clients on the same server and model, and local
# hf_chat(model) against transformers' generate(); medians of ROUNDS, ratios ours / anchor.
# A process's speed at this tiny model's scale varies from one process to the next (one in four
# or five runs 10-25% slower, on either side), so the local comparison runs PROCESSES R processes
# (local.R) alternating with as many Python ones, and takes the median of their medians. A third
# process per pair runs the Python side's generate() code inside R, to split the ratio into what
# R's process costs that code and what hfbridge adds.
# Usage: Rscript bench/chat/bench.R ROUNDS PROCESSES
library(hfbridge)
rounds <- as.integer(commandArgs(TRUE)[1])
processes <- as.integer(commandArgs(TRUE)[2])
max_tokens <- 16L
question <- "The food was excellent."
python <- Sys.getenv("RETICULATE_PYTHON")
folder <- reticulate::import("pybridge.fixtures.task_models")$ensure(names = list("chat"))$chat
srv <- hf_serve(c(chat = folder), max_tokens = 64L)

new_chat <- function(...) hf_chat(folder, ..., system_prompt = "Be brief.",
                                  max_tokens = max_tokens)

# A Python started from R inherits R's LD_LIBRARY_PATH, which breaks its imports: unset it.
run_json <- function(command, args) {
  jsonlite::fromJSON(system2(command, args, stdout = TRUE, stderr = FALSE))
}
run_anchor <- function(...) {
  run_json("/usr/bin/env", c("-u", "LD_LIBRARY_PATH", python, "bench/chat/anchor.py", ...))
}

remote <- new_chat(endpoint = srv)
invisible(remote$chat(question))  # warm: the server's first request, and R's first Python calls
request_once <- function(chat) {
  started <- Sys.time()  # microseconds; system.time() counts whole milliseconds
  chat$chat(question)
  as.numeric(Sys.time() - started, units = "secs")
}
stream_once <- function(chat) {
  started <- Sys.time()
  first <- NULL
  n <- 0L
  chat$stream(question, callback = function(chunk) {
    n <<- n + 1L
    if (is.null(first)) first <<- as.numeric(Sys.time() - started, units = "secs")
  })
  total <- as.numeric(Sys.time() - started, units = "secs")
  c(first, if (n > 1L) (n - 1L) / (total - first) else NA)
}
# The server's pace drifts over a run (a block of requests took 12 ms, a later one 16 ms), so
# our blocks of ROUNDS requests and streams alternate with the anchor's, which also runs first
# and last; each side's rounds are pooled.
blocks <- 3L
ours <- list(request = numeric(), first_chunk = numeric(), chunks_per_s = numeric())
theirs <- list()
for (block in seq_len(blocks + 1L)) {
  pass <- run_anchor("server", paste0(srv$url, "/v1"), folder, rounds, max_tokens)
  for (name in names(pass)) theirs[[name]] <- c(theirs[[name]], pass[[name]])
  if (block > blocks) break
  # new chats, made before the clock starts: every request sends the same two messages
  fresh <- lapply(seq_len(2L * rounds), function(i) new_chat(endpoint = srv))
  ours$request <- c(ours$request, vapply(fresh[seq_len(rounds)], request_once, 0))
  streams <- vapply(fresh[rounds + seq_len(rounds)], stream_once, numeric(2))
  ours$first_chunk <- c(ours$first_chunk, streams[1, ])
  ours$chunks_per_s <- c(ours$chunks_per_s, streams[2, ])
}
anchor <- lapply(theirs, stats::median, na.rm = TRUE)
hf_serve_stop(srv)

# Per process: hfbridge's turns in R, generate() in Python, and the same generate() code run
# inside an R process (which parts R's process costs, and which hfbridge).
local_medians <- vapply(seq_len(processes), function(i) {
  r_side <- run_json("Rscript", c("bench/chat/local.R", folder, rounds, max_tokens))
  py_side <- run_anchor("local", folder, rounds, max_tokens)
  in_r <- run_json("Rscript", c("bench/chat/local.R", folder, rounds, max_tokens, "generate"))
  c(stats::median(r_side$local), stats::median(py_side$local), stats::median(in_r$local))
}, numeric(3))
report <- function(name, ours, theirs, anchor_name, unit = "ms", scale = 1000) {
  cat(sprintf("result %s: hfbridge %.2f %s, %s %.2f %s, ratio %.2fx\n", name, ours * scale,
              unit, anchor_name, theirs * scale, unit, ours / theirs))
}
mine <- lapply(ours, stats::median, na.rm = TRUE)
report("chat request (server)", mine$request, anchor$request, "InferenceClient.chat_completion")
report("time to first chunk", mine$first_chunk, anchor$first_chunk, "InferenceClient stream")
report("chunks per second", mine$chunks_per_s, anchor$chunks_per_s, "InferenceClient stream",
       unit = "/s", scale = 1)
local <- apply(local_medians, 1, stats::median)  # hfbridge, Python, generate() inside R
report("local chat", local[1], local[2], "transformers generate()")
cat(sprintf("local chat, per process pair: %s\n",
            paste(sprintf("%.2fx", local_medians[1, ] / local_medians[2, ]), collapse = " ")))
cat(sprintf(paste("local chat, split: generate() run inside R %.2f ms, so R's process %.2fx",
                  "and hfbridge's own part %.2fx\n"),
            local[3] * 1000, local[3] / local[2], local[1] / local[3]))
