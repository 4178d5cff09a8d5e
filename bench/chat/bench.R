# bench/chat: hf_chat() from R against Python's clients on the same server and model (medians of
# SERVER_ROUNDS requests and streams), and local hf_chat(model) against transformers'
# generate() (medians of ROUNDS turns per process); ratios ours / anchor.
# Every round of ours is interleaved with one of the anchor's, taking turns at going first, so
# that a server or machine whose pace drifts within a run (on this shared machine, a block of
# requests took 12 ms and a later one 16 ms) favours neither side. The anchor is a long-lived
# Python process (anchor.py) that runs one round per line it reads.
# A process's speed at this tiny model's scale also varies from one process to the next (one in
# four or five is 10-25% slower, on either side), so the local comparison runs PROCESSES sets of
# processes, each set an R process of hfbridge's turns, a Python one of generate(), and an R one
# that runs the Python side's generate() code inside R (to split the ratio into what R's
# process costs that code and what hfbridge adds); it takes the median of their medians.
# A request's time spreads widely here (12 to 18 ms from the 10th to the 90th percentile), so
# the server's side takes more rounds than a median of 20 can settle.
# Usage: Rscript bench/chat/bench.R ROUNDS PROCESSES SERVER_ROUNDS
library(hfbridge)
rounds <- as.integer(commandArgs(TRUE)[1])
processes <- as.integer(commandArgs(TRUE)[2])
server_rounds <- as.integer(commandArgs(TRUE)[3])
max_tokens <- 16L
question <- "The food was excellent."
python <- Sys.getenv("RETICULATE_PYTHON")
folder <- reticulate::import("pybridge.fixtures.task_models")$ensure(names = list("chat"))$chat
srv <- hf_serve(c(chat = folder), max_tokens = 64L)

new_chat <- function(...) hf_chat(folder, ..., system_prompt = "Be brief.",
                                  max_tokens = max_tokens)

# A long-lived process that answers each line written to it with one line of JSON, after a
# "ready" line. A Python started from R inherits R's LD_LIBRARY_PATH, which breaks its imports:
# the anchor runs without it.
start_rounds <- function(command, args) {
  process <- processx::process$new(command, args, stdin = "|", stdout = "|", stderr = NULL)
  next_line(process)
  process
}
next_line <- function(process) {
  repeat {
    line <- process$read_output_lines(n = 1L)
    if (length(line)) return(line)
    if (!process$is_alive()) stop("a bench process exited early", call. = FALSE)
    process$poll_io(-1L)
  }
}
ask <- function(process, round) {
  process$write_input(paste0(round, "\n"))
  jsonlite::fromJSON(next_line(process))
}
python_rounds <- function(...) {
  start_rounds("/usr/bin/env", c("-u", "LD_LIBRARY_PATH", python, "bench/chat/anchor.py", ...))
}
# Runs each of `sides` (functions returning a named list of times) once per round, taking turns
# at going first, and pools each side's times by name.
interleave <- function(sides, rounds) {
  times <- lapply(sides, function(side) list())
  for (round in seq_len(rounds)) {
    order <- (seq_along(sides) + round - 2L) %% length(sides) + 1L
    for (side in names(sides)[order]) {
      result <- sides[[side]]()
      for (name in names(result)) {
        times[[side]][[name]] <- c(times[[side]][[name]], unlist(result[[name]]))
      }
    }
  }
  times
}

clock <- function(expr) {
  started <- Sys.time()  # microseconds; system.time() counts whole milliseconds
  force(expr)
  as.numeric(Sys.time() - started, units = "secs")
}
request_once <- function() {
  chat <- new_chat(endpoint = srv)  # a new chat: every request sends the same two messages
  list(request = clock(chat$chat(question)))
}
stream_once <- function() {
  chat <- new_chat(endpoint = srv)
  started <- Sys.time()
  first <- NULL
  n <- 0L
  chat$stream(question, callback = function(chunk) {
    n <<- n + 1L
    if (is.null(first)) first <<- as.numeric(Sys.time() - started, units = "secs")
  })
  total <- as.numeric(Sys.time() - started, units = "secs")
  list(first_chunk = first, chunks_per_s = if (n > 1L) (n - 1L) / (total - first) else NA)
}

invisible(new_chat(endpoint = srv)$chat(question))  # the server's and R's first calls
client <- python_rounds("server", paste0(srv$url, "/v1"), folder, max_tokens)
# Requests, then streams: a request right after a stream can find the server still finishing it.
requests <- interleave(list(ours = request_once, theirs = function() ask(client, "request")),
                       server_rounds)
streams <- interleave(list(ours = stream_once, theirs = function() ask(client, "stream")),
                      server_rounds)
server_times <- lapply(c(ours = "ours", theirs = "theirs"),
                       function(side) c(requests[[side]], streams[[side]]))
invisible(client$kill())
hf_serve_stop(srv)

# Per set of processes: hfbridge's turns in R, generate() in Python, and the same generate()
# code run inside an R process (which parts R's process costs, and which hfbridge).
local_medians <- vapply(seq_len(processes), function(i) {
  ours <- start_rounds("Rscript", c("bench/chat/local.R", folder, max_tokens))
  theirs <- python_rounds("local", folder, max_tokens)
  in_r <- start_rounds("Rscript", c("bench/chat/local.R", folder, max_tokens))
  times <- interleave(list(
    ours = function() ask(ours, "chat"),
    theirs = function() ask(theirs, "generate"),
    in_r = function() ask(in_r, "generate")
  ), rounds)
  for (process in list(ours, theirs, in_r)) process$kill()
  vapply(times, function(side) stats::median(side$local), 0)
}, numeric(3))

report <- function(name, ours, theirs, anchor_name, unit = "ms", scale = 1000) {
  cat(sprintf("result %s: hfbridge %.2f %s, %s %.2f %s, ratio %.2fx\n", name, ours * scale,
              unit, anchor_name, theirs * scale, unit, ours / theirs))
}
medians <- lapply(server_times, function(side) lapply(side, stats::median, na.rm = TRUE))
mine <- medians$ours
anchor <- medians$theirs
report("chat request (server)", mine$request, anchor$request, "InferenceClient.chat_completion")
report("time to first chunk", mine$first_chunk, anchor$first_chunk, "InferenceClient stream")
report("chunks per second", mine$chunks_per_s, anchor$chunks_per_s, "InferenceClient stream",
       unit = "/s", scale = 1)
local <- apply(local_medians, 1, stats::median)  # hfbridge, Python, generate() inside R
report("local chat", local[["ours"]], local[["theirs"]], "transformers generate()")
cat(sprintf("local chat, per set of processes: %s\n",
            paste(sprintf("%.2fx", local_medians["ours", ] / local_medians["theirs", ]),
                  collapse = " ")))
cat(sprintf(paste("local chat, split: generate() run inside R %.2f ms, so R's process %.2fx",
                  "and hfbridge's own part %.2fx\n"),
            local[["in_r"]] * 1000, local[["in_r"]] / local[["theirs"]],
            local[["ours"]] / local[["in_r"]]))
