# The R side of bench/chat's local comparison: ROUNDS turns of a local hf_chat(FOLDER), each on
# a new chat made before the clock starts (so every turn sends the same two messages as
# anchor.py's generate() does). Prints each round's time in seconds, as JSON.
# With a fourth argument "generate", the turns are anchor.py's own generate() code, run in this
# R process through reticulate (after hf_chat() has loaded torch as hfbridge does): what R's
# process costs that code, apart from hfbridge.
# Usage: Rscript bench/chat/local.R FOLDER ROUNDS MAX_TOKENS [generate]
library(hfbridge)
args <- commandArgs(TRUE)
folder <- args[[1]]
rounds <- as.integer(args[[2]])
max_tokens <- as.integer(args[[3]])
new_chat <- function() hf_chat(folder, system_prompt = "Be brief.", max_tokens = max_tokens)
question <- "The food was excellent."
invisible(new_chat()$chat(question))  # loads the model once; later chats share it
if (identical(args[4], "generate")) {
  anchor <- reticulate::import_from_path("anchor", "bench/chat")
  times <- unlist(anchor$local(folder, rounds, max_tokens)$local)
} else {
  chats <- lapply(seq_len(rounds), function(i) new_chat())
  times <- vapply(chats, function(chat) {
    started <- Sys.time()  # microseconds; system.time() counts whole milliseconds
    chat$chat(question)
    as.numeric(Sys.time() - started, units = "secs")
  }, 0)
}
cat(jsonlite::toJSON(list(local = times), digits = NA), "\n")
