# bench/chat: hf_chat() from R against Python's clients on the same server and model, and local
# hf_chat(model) against transformers' generate(); medians of ROUNDS, ratios ours / anchor.
# Usage: Rscript bench/chat/bench.R ROUNDS
library(hfbridge)
rounds <- as.integer(commandArgs(TRUE)[1])
max_tokens <- 16L
question <- "The food was excellent."
python <- Sys.getenv("RETICULATE_PYTHON")
folder <- reticulate::import("pybridge.fixtures.task_models")$ensure(names = list("chat"))$chat
srv <- hf_serve(c(chat = folder), max_tokens = 64L)

# Each round asks a new chat (made before the clock starts), so every request sends the same
# two messages as the Python side does.
median_time <- function(fn) {
  stats::median(vapply(seq_len(rounds), function(i) {
    started <- Sys.time()  # microseconds; system.time() counts whole milliseconds
    fn(i)
    as.numeric(Sys.time() - started, units = "secs")
  }, 0))
}
new_chat <- function(...) hf_chat(folder, ..., system_prompt = "Be brief.",
                                  max_tokens = max_tokens)

# A Python started from R inherits R's LD_LIBRARY_PATH, which breaks its imports: unset it.
# The anchor runs before and after our rounds, and its rounds are pooled with equal weight.
anchor_args <- c("-u", "LD_LIBRARY_PATH", python, "bench/chat/anchor.py",
                 paste0(srv$url, "/v1"), folder, folder, rounds, max_tokens)
run_anchor <- function() {
  jsonlite::fromJSON(system2("/usr/bin/env", anchor_args, stdout = TRUE, stderr = FALSE))
}
before <- run_anchor()

remote <- new_chat(endpoint = srv)
invisible(remote$chat(question))  # warm: the server's first request, and R's first Python calls
fresh <- lapply(seq_len(rounds), function(i) new_chat(endpoint = srv))
request <- median_time(function(i) fresh[[i]]$chat(question))

streaming <- lapply(seq_len(rounds), function(i) new_chat(endpoint = srv))
stream_once <- function(i) {
  started <- Sys.time()
  first <- NULL
  n <- 0L
  streaming[[i]]$stream(question, callback = function(chunk) {
    n <<- n + 1L
    if (is.null(first)) first <<- as.numeric(Sys.time() - started, units = "secs")
  })
  total <- as.numeric(Sys.time() - started, units = "secs")
  c(first, if (n > 1L) (n - 1L) / (total - first) else NA)
}
streams <- vapply(seq_len(rounds), stream_once, numeric(2))

invisible(new_chat()$chat(question))  # loads the model once; later chats share it
locals <- lapply(seq_len(rounds), function(i) new_chat())
local_time <- median_time(function(i) locals[[i]]$chat(question))

after <- run_anchor()
anchor <- lapply(stats::setNames(nm = names(before)), function(name) {
  stats::median(c(before[[name]], after[[name]]), na.rm = TRUE)
})
report <- function(name, ours, theirs, anchor_name, unit = "ms", scale = 1000) {
  cat(sprintf("result %s: hfbridge %.2f %s, %s %.2f %s, ratio %.2fx\n", name, ours * scale,
              unit, anchor_name, theirs * scale, unit, ours / theirs))
}
report("chat request (server)", request, anchor$request, "InferenceClient.chat_completion")
report("time to first chunk", stats::median(streams[1, ]), anchor$first_chunk,
       "InferenceClient stream")
report("chunks per second", stats::median(streams[2, ], na.rm = TRUE), anchor$chunks_per_s,
       "InferenceClient stream", unit = "/s", scale = 1)
report("local chat", local_time, anchor$local, "transformers generate()")
hf_serve_stop(srv)
