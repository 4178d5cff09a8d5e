# Encodings: the hfbridge_encoding class that $encode() and $encode_batch() return (see
# ?tokenizer for its fields), built from the flat columns of pybridge.tokenizer.encode().

tok_na <- function(x) {
  dim(x) <- NULL
  x[x < 0L] <- NA_integer_
  x
}

# A list of hfbridge_encoding objects from pybridge.tokenizer.encode()'s columns.
tok_encodings <- function(cols) {
  splits <- cols$splits
  parts <- list(
    ids = tok_split(cols$ids, splits),
    tokens = tok_split(as.character(cols$tokens), splits),
    start = tok_split(cols$start, splits),
    end = tok_split(cols$end, splits),
    attention_mask = tok_split(cols$attention_mask, splits),
    type_ids = tok_split(cols$type_ids, splits),
    special_tokens_mask = tok_split(cols$special_tokens_mask, splits),
    word_ids = tok_split(tok_na(cols$word_ids), splits),
    sequence_ids = tok_split(tok_na(cols$sequence_ids), splits)
  )
  encodings <- .mapply(new_encoding, parts, NULL)
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

new_encoding <- function(ids, tokens, start, end, attention_mask, type_ids, special_tokens_mask,
                         word_ids, sequence_ids) {
  offsets <- matrix(c(start, end), ncol = 2L, dimnames = list(NULL, c("start", "end")))
  structure(list(ids = ids, tokens = tokens, offsets = offsets, attention_mask = attention_mask,
                 type_ids = type_ids, special_tokens_mask = special_tokens_mask,
                 word_ids = word_ids, sequence_ids = sequence_ids, overflowing = list()),
            class = "hfbridge_encoding")
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
