# The R side of bench/chat's local comparison, as a long-lived process: it loads the model, prints
# "ready", then runs one round per line read from stdin and prints that round's time (seconds)
# as one line of JSON, as anchor.py does.
# - "chat": one turn of a local hf_chat(FOLDER), on a new chat made before the clock starts (so
#   every turn sends the same two messages as anchor.py's generate() does).
# - "generate": anchor.py's own generate() code, run in this R process through reticulate (after
#   hf_chat() has loaded torch as hfbridge does): what R's process costs that code, apart from
#   hfbridge.
# Usage: Rscript bench/chat/local.R FOLDER MAX_TOKENS
library(hfbridge)
args <- commandArgs(TRUE)
folder <- args[[1]]
max_tokens <- as.integer(args[[2]])
new_chat <- function() hf_chat(folder, system_prompt = "Be brief.", max_tokens = max_tokens)
question <- "The food was excellent."
invisible(new_chat()$chat(question))  # loads the model once; later chats share it
anchor <- NULL  # anchor.py's generate() rounds, loaded by the first "generate" only
generate_round <- function() {
  if (is.null(anchor)) {
    anchor <<- reticulate::import_from_path("anchor", "bench/chat")$local_rounds(folder, max_tokens)
  }
  anchor$generate()
}

chat_round <- function() {
  chat <- new_chat()
  started <- Sys.time()  # microseconds; system.time() counts whole milliseconds
  chat$chat(question)
  list(local = as.numeric(Sys.time() - started, units = "secs"))
}
rounds <- list(chat = chat_round, generate = generate_round)
stdin <- file("stdin", open = "r")
cat("ready\n")
repeat {
  line <- readLines(stdin, n = 1L)
  if (!length(line)) break
  cat(jsonlite::toJSON(rounds[[line]](), auto_unbox = TRUE, digits = NA), "\n", sep = "")
}
