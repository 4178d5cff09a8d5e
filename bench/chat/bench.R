# bench/chat: hf_chat() from R against Python's clients on the same server and model, and local
# hf_chat(model) against transformers' generate(); medians of ROUNDS, ratios ours / anchor.
# A process's speed at this tiny model's scale varies from one process to the next (one in four
# or five runs 10-25% slower, on either side), so the local comparison runs PROCESSES R processes
# (local.R) alternating with as many Python ones, and takes the median of their medians.
# Usage: Rscript bench/chat/bench.R ROUNDS PROCESSES
library(hfbridge)
rounds <- as.integer(commandArgs(TRUE)[1])
processes <- as.integer(commandArgs(TRUE)[2])
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
run_json <- function(command, args) {
  jsonlite::fromJSON(system2(command, args, stdout = TRUE, stderr = FALSE))
}
run_anchor <- function(...) {
  run_json("/usr/bin/env", c("-u", "LD_LIBRARY_PATH", python, "bench/chat/anchor.py", ...))
}
before <- run_anchor("server", paste0(srv$url, "/v1"), folder, rounds, max_tokens)

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

after <- run_anchor("server", paste0(srv$url, "/v1"), folder, rounds, max_tokens)
anchor <- lapply(stats::setNames(nm = names(before)), function(name) {
  stats::median(c(before[[name]], after[[name]]), na.rm = TRUE)
})
hf_serve_stop(srv)

local_medians <- vapply(seq_len(processes), function(i) {
  ours <- run_json("Rscript", c("bench/chat/local.R", folder, rounds, max_tokens))
  theirs <- run_anchor("local", folder, rounds, max_tokens)
  c(stats::median(ours$local), stats::median(theirs$local))
}, numeric(2))
report <- function(name, ours, theirs, anchor_name, unit = "ms", scale = 1000) {
  cat(sprintf("result %s: hfbridge %.2f %s, %s %.2f %s, ratio %.2fx\n", name, ours * scale,
              unit, anchor_name, theirs * scale, unit, ours / theirs))
}
report("chat request (server)", request, anchor$request, "InferenceClient.chat_completion")
report("time to first chunk", stats::median(streams[1, ]), anchor$first_chunk,
       "InferenceClient stream")
report("chunks per second", stats::median(streams[2, ], na.rm = TRUE), anchor$chunks_per_s,
       "InferenceClient stream", unit = "/s", scale = 1)
report("local chat", stats::median(local_medians[1, ]), stats::median(local_medians[2, ]),
       "transformers generate()")
cat(sprintf("local chat, per process pair: %s\n",
            paste(sprintf("%.2fx", local_medians[1, ] / local_medians[2, ]), collapse = " ")))
