# Encodings: the hfbridge_encoding class that $encode() and $encode_batch() return (see
# ?tokenizer for its fields), built from the flat columns of pybridge.tokenizer.encode().

# A list of hfbridge_encoding objects from pybridge.tokenizer.encode()'s columns, split in one
# pass in C (src/split_rows.c): per encoding, R code would cost as much as the tokenizing.
tok_encodings <- function(cols) {
  on.exit(call_python(cols$held$release))
  view <- function(name) column_view(cols[[name]], cols$held)
  columns <- list(
    ids = view("ids"), tokens = tok_tokens(cols$tokens, cols$held),
    offsets = list(start = view("start"), end = view("end")),
    attention_mask = view("attention_mask"), type_ids = view("type_ids"),
    special_tokens_mask = view("special_tokens_mask"), word_ids = view("word_ids"),
    sequence_ids = view("sequence_ids"), overflowing = NULL
  )
  encodings <- .Call(hfb_split_rows, columns, as.vector(cols$splits), "hfbridge_encoding",
                     c("word_ids", "sequence_ids"))
  parent <- as.vector(cols$parent)
  extra <- which(parent >= 0L)
  if (!length(extra)) return(encodings)
  main <- encodings[parent < 0L]
  for (i in extra) {
    p <- parent[i] + 1L
    main[[p]]$overflowing <- c(main[[p]]$overflowing, list(encodings[[i]]))
  }
  main
}

# Every token of pybridge.token_strings.token_column(): read one by one, or as 1-based codes
# into the batch's distinct strings, which hfb_split_rows() decodes row by row.
tok_tokens <- function(tokens, held) {
  if (is.null(tokens$index)) return(column_vector(tokens$strings))
  codes <- column_view(tokens$index, held)
  attr(codes, "levels") <- column_vector(tokens$table)
  codes
}

#' @export
print.hfbridge_encoding <- function(x, ...) {
  n <- length(x$ids)
  cat(sprintf("<hfbridge_encoding> %d token%s\n", n, if (n == 1L) "" else "s"))
  shown <- seq_len(min(n, 20L))
  if (n) {
    table <- data.frame(token = x$tokens[shown], id = x$ids[shown], start = x$offsets[shown, 1L],
                        end = x$offsets[shown, 2L], type = x$type_ids[shown],
                        mask = x$attention_mask[shown], stringsAsFactors = FALSE)
    print(table, row.names = FALSE)
    if (n > 20L) cat(sprintf("... and %d more tokens\n", n - 20L))
  }
  if (length(x$overflowing)) cat(sprintf("%d overflowing piece(s)\n", length(x$overflowing)))
  invisible(x)
}
