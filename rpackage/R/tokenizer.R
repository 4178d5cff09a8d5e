#' Tokenizers
#'
#' @description
#' A tokenizer turns texts into token ids and back, with the Hugging Face `tokenizers` library
#' doing the work in Python. `tokenizer` is the class generator, used as in the `tok` package:
#' `tokenizer$from_pretrained("gpt2")` and `tokenizer$from_file(path)` return a tokenizer
#' object of class `hfbridge_tokenizer` (see [tokenizer_from_pretrained()]). Train a new one
#' with [tokenizer_train()].
#'
#' Token ids are 0-based, as the models expect. Every method is vectorised over texts; `NA`
#' texts are an error of class `hfbridge_error_invalid_argument` that names their positions.
#' Texts are converted to UTF-8 with [enc2utf8()]; strings that are not valid UTF-8 are refused
#' (convert them with [iconv()] first).
#'
#' An encoding (class `hfbridge_encoding`) is a list with `ids` (integer, 0-based), `tokens`,
#' `offsets` (a two-column integer matrix `start`, `end`, 1-based inclusive, so that
#' `substr(text, start, end)` is the token's source text; special tokens have an empty span),
#' `attention_mask`, `type_ids`, `special_tokens_mask`, `word_ids` and `sequence_ids` (0-based,
#' `NA` for special tokens), and `overflowing` (the pieces cut off by truncation with a
#' stride, as encodings).
#'
#' Padding to a length (or a multiple) is refused, before anything is allocated, when the result
#' would need more than half of the machine's memory (or of its cgroup), or more than the
#' option `hfbridge.max_padding_bytes` (a number of bytes) when it is set: an error of class
#' `hfbridge_error_memory` whose fields `cells` (encodings x padded length), `bytes` (the
#' estimated memory), `limit` and `argument` (what to lower) say how large it would be. The
#' estimate is 32 bytes a cell for `$encode_matrix()`, 280 for encodings and 120 for
#' `$encode_ids()`, measured at the peak, while the Python and R copies coexist.
#' `$enable_padding()` refuses a `length` that a single encoding could not be padded to; the
#' encoding methods check the whole batch.
#'
#' Printing a tokenizer shows its model type, vocabulary size, special tokens, padding and
#' truncation.
#'
#' The object holds a live Python tokenizer: it lives as long as the R session, or until
#' `$close()` lets it go. Saved with [saveRDS()] it cannot be used in another session (an error of
#' class `hfbridge_error_invalid_argument`); use `$save()` and [tokenizer_from_file()].
#'
#' @format An R6 class generator with the static functions `$from_pretrained()` and
#'   `$from_file()`.
#' @importFrom R6 R6Class
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' tok <- tokenizer$from_pretrained("gpt2")
#' encoded <- tok$encode("Hello, world!")
#' encoded$ids
#' tok$decode(encoded$ids)
#' batch <- tok$encode_batch(c("First sentence.", "Second sentence."))
#' lapply(batch, function(x) x$ids)
#' m <- tok$encode_matrix(c("First sentence.", "Second sentence."), max_length = 8)
#' m$ids
tokenizer <- R6::R6Class(
  classname = "hfbridge_tokenizer",
  inherit = hfbridge_handle,
  cloneable = FALSE,
  public = list(
    #' @description Wraps a Python `tokenizers.Tokenizer`; use `$from_pretrained()`,
    #'   `$from_file()` or [tokenizer_train()] instead.
    #' @param handle A Python `tokenizers.Tokenizer` object.
    initialize = function(handle) {
      if (!inherits(handle, "python.builtin.object")) {
        hfbridge_abort("invalid_argument", paste(
          "tokenizer$new() takes a Python tokenizer; load one with",
          "tokenizer$from_pretrained() or tokenizer$from_file()."), argument = "handle")
      }
      super$initialize(handle)
    },

    #' @description Encodes one text (and optionally its pair).
    #' @param text A string. Several texts give a list of encodings, as `$encode_batch()`.
    #' @param pair An optional second text of the same length as `text`.
    #' @param add_special_tokens Whether to add the special tokens (such as `[CLS]`).
    #' @return An encoding (class `hfbridge_encoding`).
    encode = function(text, pair = NULL, add_special_tokens = TRUE) {
      out <- self$encode_batch(text, pair, add_special_tokens)
      if (length(text) == 1L) out[[1L]] else out
    },

    #' @description Encodes many texts, with the tokenizer's padding and truncation.
    #' @param texts A character vector.
    #' @param pairs An optional character vector of second texts, one per text.
    #' @param add_special_tokens Whether to add the special tokens.
    #' @return A list of encodings.
    encode_batch = function(texts, pairs = NULL, add_special_tokens = TRUE) {
      args <- tok_encode_args(texts, pairs, add_special_tokens)
      cols <- do.call(private$call, c(list("encode"), args))
      tok_encodings(cols)
    },

    #' @description The ids only, as a list of integer vectors: the fast ragged form.
    #' @param texts A character vector.
    #' @param pairs An optional character vector of second texts, one per text.
    #' @param add_special_tokens Whether to add the special tokens.
    #' @param parallel,chunk_size,retry Run in chunks on the workers of the active future
    #'   plan (see [hfbridge_parallel]).
    #' @return A list of integer vectors (0-based ids), one per text.
    encode_ids = function(texts, pairs = NULL, add_special_tokens = TRUE, parallel = FALSE,
                          chunk_size = NULL, retry = 0L) {
      args <- tok_encode_args(texts, pairs, add_special_tokens)
      if (parallel_wanted(parallel, chunk_size)) {
        return(parallel_encode(self, "encode_ids", args, chunk_size, retry))
      }
      out <- do.call(private$call, c(list("encode_ids"), args))
      tok_split(out$ids, out$splits)
    },

    #' @description A rectangular batch: ids, attention mask and type ids as integer matrices
    #'   with one row per text.
    #' @param texts A character vector.
    #' @param pairs An optional character vector of second texts, one per text.
    #' @param add_special_tokens Whether to add the special tokens.
    #' @param padding `"longest"` pads to the longest encoding; `"max_length"` to `max_length`.
    #' @param max_length If given, encodings are truncated to it (with the tokenizer's
    #'   truncation strategy, stride and direction when truncation is enabled). Otherwise the
    #'   tokenizer's own truncation applies.
    #' @param pad_to_multiple_of Round the width up to a multiple of this.
    #' @param parallel,chunk_size,retry Run in chunks on the workers of the active future
    #'   plan (see [hfbridge_parallel]); the chunks are padded to the same width.
    #' @return A list of three integer matrices `ids`, `attention_mask` and `type_ids`
    #'   (texts x tokens). Pad id, pad type id and side come from `$enable_padding()`, or are
    #'   0, 0 and right when padding is off. A width that would need more than the memory
    #'   limit (32 bytes a cell; see [tokenizer]) is refused with `hfbridge_error_memory`,
    #'   before anything is allocated (with `parallel`, before any chunk runs).
    encode_matrix = function(texts, pairs = NULL, add_special_tokens = TRUE,
                             padding = c("longest", "max_length"), max_length = NULL,
                             pad_to_multiple_of = NULL, parallel = FALSE, chunk_size = NULL,
                             retry = 0L) {
      args <- tok_encode_args(texts, pairs, add_special_tokens)
      padding <- check_choice(padding, c("longest", "max_length"), "padding")
      args$padding <- padding
      args$max_length <- check_optional_count(max_length, "max_length")
      args$pad_to_multiple_of <- check_optional_count(pad_to_multiple_of, "pad_to_multiple_of")
      if (parallel_wanted(parallel, chunk_size)) {
        # Each chunk fits, but their rows bound together might not.
        if (padding == "max_length" && !is.null(args$max_length)) {
          py_call("tokenizer", "check_matrix", length(args$texts), args$max_length,
                  args$pad_to_multiple_of, args$max_padding_bytes)
        }
        return(parallel_encode(self, "encode_matrix", args, chunk_size, retry))
      }
      do.call(private$call, c(list("encode_matrix"), args))
    },

    #' @description Decodes ids into a text.
    #' @param ids An integer vector of 0-based ids (a list or a matrix is passed on to
    #'   `$decode_batch()`).
    #' @param skip_special_tokens Whether to leave special tokens out.
    #' @return A string.
    decode = function(ids, skip_special_tokens = TRUE) {
      if (is.list(ids) || is.matrix(ids)) {
        return(self$decode_batch(ids, skip_special_tokens))
      }
      private$call("decode", tok_ids(ids),
                   skip_special_tokens = check_flag(skip_special_tokens, "skip_special_tokens"))
    },

    #' @description Decodes many id sequences.
    #' @param sequences A list of integer vectors; an integer matrix with one row per sequence
    #'   (`NA` cells are padding and are left out); or the list returned by `$encode_matrix()`,
    #'   whose `attention_mask` tells the padding apart.
    #' @param skip_special_tokens Whether to leave special tokens out.
    #' @return A character vector.
    decode_batch = function(sequences, skip_special_tokens = TRUE) {
      ragged <- tok_ragged_ids(sequences)
      skip <- check_flag(skip_special_tokens, "skip_special_tokens")
      if (length(ragged$splits) == 1L) return(character(0))
      as.character(private$call("decode_batch", ragged$ids, ragged$splits,
                                skip_special_tokens = skip))
    },

    #' @description Formats a conversation with the chat template of the model folder or
    #'   repo the tokenizer was loaded from, by transformers' own `apply_chat_template()`
    #'   (`chat_template.jinja`, or `chat_template` in `tokenizer_config.json`). transformers'
    #'   tokenizer is loaded on the first call (loading a tokenizer does not import it).
    #' @param messages A data frame with the columns `role` and `content`, one row per message,
    #'   or a list of messages, each `list(role = , content = )` (other fields, such as an
    #'   assistant's `tool_calls`, are passed on).
    #' @param add_generation_prompt Whether to end with the start of the assistant's turn.
    #' @param tokenize `FALSE` for the text; `TRUE` for its token ids.
    #' @param tools `NULL`, or tool definitions: a list of named lists in OpenAI's JSON-schema
    #'   shape (`list(type = "function", "function" = list(name = , description = ,
    #'   parameters = ))`), or their JSON text.
    #' @return A string, or with `tokenize = TRUE` an integer vector of 0-based ids, as
    #'   transformers encodes the text from the folder's tokenizer files (tokens added with
    #'   `$add_tokens()` are not seen). A tokenizer without a template (a trained one, a
    #'   `tokenizer.json` on its own, a model that is not a chat model) signals
    #'   `hfbridge_error_no_chat_template`; a message without a role or with a content that is not
    #'   a string, `hfbridge_error_invalid_argument` naming its position.
    apply_chat_template = function(messages, add_generation_prompt = TRUE, tokenize = FALSE,
                                   tools = NULL) {
      tokenize <- check_flag(tokenize, "tokenize")
      out <- private$call(
        "apply_chat_template", tok_chat_messages(messages),
        add_generation_prompt = check_flag(add_generation_prompt, "add_generation_prompt"),
        tokenize = tokenize, tools = tok_chat_tools(tools)
      )
      if (tokenize) as.vector(out) else out
    },

    #' @description Pads every batch (as `tokenizers`' `enable_padding`).
    #' @param direction `"right"` or `"left"`.
    #' @param pad_id The id used for padding.
    #' @param pad_type_id The type id used for padding.
    #' @param pad_token The token used for padding.
    #' @param length A fixed length; `NULL` pads to the longest encoding of each batch. Batches
    #'   that this would make larger than the memory limit are refused (see [tokenizer]).
    #' @param pad_to_multiple_of Round the padded length up to a multiple of this.
    #' @return The tokenizer, invisibly.
    enable_padding = function(direction = "right", pad_id = 0L, pad_type_id = 0L,
                              pad_token = "[PAD]", length = NULL, pad_to_multiple_of = NULL) {
      private$call(
        "enable_padding", direction = check_choice(direction, c("right", "left"), "direction"),
        pad_id = check_count(pad_id, "pad_id", 0L),
        pad_type_id = check_count(pad_type_id, "pad_type_id", 0L),
        pad_token = check_string(pad_token, "pad_token", blank_ok = TRUE),
        length = check_optional_count(length, "length"),
        pad_to_multiple_of = check_optional_count(pad_to_multiple_of, "pad_to_multiple_of"),
        max_padding_bytes = tok_padding_limit()
      )
      invisible(self)
    },

    #' @description Turns padding off.
    #' @return The tokenizer, invisibly.
    no_padding = function() {
      private$call("no_padding")
      invisible(self)
    },

    #' @description Truncates every encoding (as `tokenizers`' `enable_truncation`).
    #' @param max_length The maximum number of tokens, special tokens included.
    #' @param stride How many tokens of the previous piece the overflowing pieces repeat.
    #' @param strategy `"longest_first"`, `"only_first"` or `"only_second"`.
    #' @param direction `"right"` or `"left"`.
    #' @return The tokenizer, invisibly.
    enable_truncation = function(max_length, stride = 0, strategy = "longest_first",
                                 direction = "right") {
      private$call(
        "enable_truncation", max_length = check_count(max_length, "max_length", 1L),
        stride = check_count(stride, "stride", 0L),
        strategy = check_choice(strategy, c("longest_first", "only_first", "only_second"),
                                "strategy"),
        direction = check_choice(direction, c("right", "left"), "direction")
      )
      invisible(self)
    },

    #' @description Turns truncation off.
    #' @return The tokenizer, invisibly.
    no_truncation = function() {
      private$call("no_truncation")
      invisible(self)
    },

    #' @description The size of the vocabulary.
    #' @param with_added_tokens Whether to count the added tokens.
    #' @return An integer.
    get_vocab_size = function(with_added_tokens = TRUE) {
      as.integer(private$call("get_vocab_size", check_flag(with_added_tokens, "with_added_tokens")))
    },

    #' @description The vocabulary.
    #' @param with_added_tokens Whether to include the added tokens.
    #' @return A named integer vector of ids (0-based) sorted by id, named by token.
    get_vocab = function(with_added_tokens = TRUE) {
      out <- private$call("get_vocab", check_flag(with_added_tokens, "with_added_tokens"))
      ids <- as.vector(out$ids)
      names(ids) <- as.character(out$tokens)
      ids
    },

    #' @description The ids of tokens.
    #' @param tokens A character vector.
    #' @return An integer vector, `NA` for tokens not in the vocabulary.
    token_to_id = function(tokens) {
      tokens <- check_texts(tokens, "tokens")
      if (!length(tokens)) return(integer(0))
      ids <- as.vector(private$call("token_to_id", tokens))
      ids[ids < 0L] <- NA_integer_
      ids
    },

    #' @description The tokens of ids.
    #' @param ids An integer vector of 0-based ids.
    #' @return A character vector, `NA` for ids not in the vocabulary (and for `NA` ids).
    id_to_token = function(ids) {
      ids <- tok_ids(ids, allow_na = TRUE)
      out <- rep(NA_character_, length(ids))
      known <- !is.na(ids)
      if (!any(known)) return(out)
      res <- private$call("id_to_token", as.array(ids[known]))
      tokens <- as.character(res$tokens)
      tokens[!as.vector(res$found)] <- NA_character_
      out[known] <- tokens
      out
    },

    #' @description Adds tokens to the vocabulary.
    #' @param tokens A character vector.
    #' @return The number of tokens added (those not already known), invisibly.
    add_tokens = function(tokens) {
      added <- private$call("add_tokens", check_texts(tokens, "tokens"), special = FALSE)
      invisible(as.integer(added))
    },

    #' @description Adds special tokens (never split, left out by `skip_special_tokens`).
    #' @param tokens A character vector.
    #' @return The number of tokens added, invisibly.
    add_special_tokens = function(tokens) {
      added <- private$call("add_tokens", check_texts(tokens, "tokens"), special = TRUE)
      invisible(as.integer(added))
    },

    #' @description Saves the tokenizer as a tokenizer.json file.
    #' @param path A file path (or an existing folder, which gets a `tokenizer.json`).
    #' @param pretty Whether to indent the JSON.
    #' @return The path written, invisibly.
    save = function(path, pretty = TRUE) {
      path <- check_string(path, "path")
      invisible(private$call("save", path.expand(path), pretty = check_flag(pretty, "pretty")))
    },

    #' @description Loads another tokenizer; the same as [tokenizer_from_pretrained()].
    #' @param identifier A Hub repo id or a local folder.
    #' @param revision A branch, tag or commit.
    #' @param token A Hub token, or `NULL` for the usual ones (`HF_TOKEN`, the token file).
    #' @param auth_token The same as `token`, as the `tok` package names it.
    from_pretrained = function(identifier, revision = "main", token = NULL, auth_token = NULL) {
      tokenizer_from_pretrained(identifier, revision, token, auth_token)
    },

    #' @description Loads another tokenizer; the same as [tokenizer_from_file()].
    #' @param path The path of a tokenizer.json file.
    from_file = function(path) {
      tokenizer_from_file(path)
    }
  ),
  active = list(
    #' @field padding The padding settings (a list), or `NULL` when padding is off.
    padding = function(value) {
      if (!missing(value)) tok_read_only("padding", "$enable_padding() or $no_padding()")
      private$call("padding")
    },
    #' @field truncation The truncation settings (a list), or `NULL` when truncation is off.
    truncation = function(value) {
      if (!missing(value)) tok_read_only("truncation", "$enable_truncation() or $no_truncation()")
      private$call("truncation")
    },
    #' @field handle The Python `tokenizers.Tokenizer` (for advanced use through reticulate).
    handle = function(value) {
      if (!missing(value)) tok_read_only("handle", "tokenizer$from_file()")
      private$live()
    }
  ),
  private = list(
    noun = "tokenizer",
    remedy = "Save tokenizers with $save() and load them with tokenizer_from_file().",
    describe = function(...) {
      if (!private$usable()) return(super$describe())
      format_tokenizer(private$call("describe"))
    },
    call = function(fun, ...) {
      py_call("tokenizer", fun, private$live(), ...)
    }
  )
)

tokenizer$from_pretrained <- function(identifier, revision = "main", token = NULL,
                                      auth_token = NULL) {
  tokenizer_from_pretrained(identifier, revision, token, auth_token)
}

tokenizer$from_file <- function(path) {
  tokenizer_from_file(path)
}

#' Load a tokenizer
#'
#' `tokenizer_from_pretrained()` loads the tokenizer of a Hugging Face Hub repo (downloaded
#' through the Hub cache, honouring `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_OFFLINE` and `HF_TOKEN`)
#' or of a local folder. It reads `tokenizer.json`; a repo without one (only `vocab.txt`,
#' `vocab.json` and `merges.txt`, or a sentencepiece model) is converted the way transformers'
#' `AutoTokenizer` does. `tokenizer_from_file()` reads a `tokenizer.json` file.
#' `tokenizer$from_pretrained()` and `tokenizer$from_file()` are the same functions.
#'
#' @param identifier A Hub repo id (`"gpt2"`, `"org/name"`), a local folder, or the path of a
#'   `tokenizer.json` file.
#' @param revision A branch, tag or commit of the repo.
#' @param token A Hub token for private or gated repos; `NULL` uses `HF_TOKEN` or the token file.
#' @param auth_token The same as `token` (the name the `tok` package uses).
#' @param path The path of a `tokenizer.json` file (or of a folder holding one).
#' @return A tokenizer (see [tokenizer]).
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' tok <- tokenizer_from_pretrained("bert-base-uncased")
#' encoded <- tok$encode("Deep learning is powerful.")
#' encoded$ids
#' encoded$tokens
#' path <- tok$save(file.path(tempdir(), "tokenizer.json"))
#' tokenizer_from_file(path)
tokenizer_from_pretrained <- function(identifier, revision = "main", token = NULL,
                                      auth_token = NULL) {
  identifier <- check_string(identifier, "identifier")
  revision <- check_string(revision, "revision")
  if (is.null(token)) token <- auth_token
  if (!is.null(token)) token <- check_string(token, "token")
  handle <- py_call("tokenizer", "from_pretrained", identifier, revision = revision,
                    env = hf_env(), token = token)
  tokenizer$new(handle)
}

#' @rdname tokenizer_from_pretrained
#' @export
tokenizer_from_file <- function(path) {
  path <- check_string(path, "path")
  tokenizer$new(py_call("tokenizer", "from_file", path.expand(path)))
}

format_tokenizer <- function(info) {
  special <- as.character(unlist(info$special_tokens))
  added <- as.integer(info$vocab_size - info$base_vocab_size)
  c(
    sprintf("<hfbridge_tokenizer> %s model, vocabulary of %d tokens%s", info$model,
            as.integer(info$vocab_size), if (added != 0L) sprintf(" (%d added)", added) else ""),
    sprintf("  special tokens: %s",
            if (length(special)) paste(special, collapse = " ") else "none"),
    sprintf("  padding: %s", format_padding(info$padding)),
    sprintf("  truncation: %s", format_truncation(info$truncation))
  )
}

format_padding <- function(p) {
  if (is.null(p)) return("off")
  to <- if (is.null(p$length)) "the longest" else as.character(p$length)
  multiple <- ""
  if (!is.null(p$pad_to_multiple_of)) {
    multiple <- sprintf(", a multiple of %d", p$pad_to_multiple_of)
  }
  sprintf("%s, to %s%s, with %s (id %d, type id %d)", p$direction, to, multiple, p$pad_token,
          as.integer(p$pad_id), as.integer(p$pad_type_id))
}

format_truncation <- function(t) {
  if (is.null(t)) return("off")
  sprintf("%s, at %d tokens (%s, stride %d)", t$direction, as.integer(t$max_length), t$strategy,
          as.integer(t$stride))
}

# ---- From flat columns to R objects ---------------------------------------------------------

# Splits flat values into a list by n + 1 offsets (0 first), as returned by pybridge.
tok_split <- function(values, splits) {
  dim(values) <- NULL
  n <- length(splits) - 1L
  if (n < 1L) return(list())
  f <- structure(rep.int(seq_len(n), diff(as.vector(splits))), levels = as.character(seq_len(n)),
                 class = "factor")
  out <- split(values, f)
  names(out) <- NULL
  out
}

# Flat ids and n + 1 splits from a list of id vectors, a padded matrix (NA = padding) or the
# result of $encode_matrix().
tok_ragged_ids <- function(x) {
  if (is.list(x) && !is.null(x$ids) && is.matrix(x$ids) && is.matrix(x$attention_mask)) {
    keep <- x$attention_mask != 0L
    x <- x$ids
  } else if (is.matrix(x)) {
    keep <- !is.na(x)
  } else if (is.list(x)) {
    lengths <- lengths(x, use.names = FALSE)
    flat <- unlist(x, use.names = FALSE)
    if (is.null(flat)) flat <- integer(0)
    return(list(ids = tok_ids(flat), splits = as.array(c(0L, cumsum(lengths)))))
  } else {
    hfbridge_abort("invalid_argument", paste(
      "sequences must be a list of integer vectors, an integer matrix (one row per sequence),",
      "or the result of $encode_matrix()."), argument = "sequences")
  }
  if (!identical(dim(keep), dim(x))) {
    hfbridge_abort("invalid_argument", "attention_mask and ids must have the same dimensions.",
                   argument = "sequences")
  }
  flat <- t(x)[t(keep)]
  list(ids = tok_ids(flat), splits = as.array(c(0L, cumsum(as.integer(rowSums(keep))))))
}

# ---- Argument checks ------------------------------------------------------------------------

tok_encode_args <- function(texts, pairs, add_special_tokens) {
  texts <- check_texts(texts, "texts")
  if (!is.null(pairs)) {
    pairs <- check_texts(pairs, "pairs")
    if (length(pairs) != length(texts)) {
      hfbridge_abort("invalid_argument", sprintf(
        "`pairs` has %d texts and `texts` has %d: give one pair per text.", length(pairs),
        length(texts)), argument = "pairs")
    }
  }
  list(texts = texts, pairs = pairs,
       add_special_tokens = check_flag(add_special_tokens, "add_special_tokens"),
       max_padding_bytes = tok_padding_limit())
}

# Option hfbridge.max_padding_bytes, checked; NULL leaves pybridge's default (half the memory).
tok_padding_limit <- function() {
  x <- getOption("hfbridge.max_padding_bytes")
  if (is.null(x)) return(NULL)
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x < 1 || x != round(x)) {
    hfbridge_abort("invalid_argument", sprintf(
      "Option hfbridge.max_padding_bytes must be a whole number of bytes >= 1, not %s.",
      describe_value(x)), argument = "hfbridge.max_padding_bytes")
  }
  as.numeric(x)
}

# 0-based ids as an integer array (a numpy array on the Python side, without a copy).
tok_ids <- function(ids, allow_na = FALSE) {
  if (is.null(ids)) ids <- integer(0)
  if (!is.numeric(ids) || (!allow_na && anyNA(ids))) {
    hfbridge_abort("invalid_argument", "ids must be a vector of whole numbers >= 0 without NA.",
                   argument = "ids")
  }
  ok <- is.na(ids) | (ids >= 0 & ids == round(ids) & ids < 2^31)
  if (!all(ok)) {
    hfbridge_abort("invalid_argument", sprintf(
      "ids must be whole numbers >= 0 (ids are 0-based); not at positions %s.",
      format_positions(which(!ok))), argument = "ids", positions = which(!ok))
  }
  if (allow_na) return(as.integer(ids))
  as.array(as.integer(ids))
}

tok_read_only <- function(field, instead) {
  hfbridge_abort("invalid_argument", sprintf("`%s` is read-only: use %s.", field, instead),
                 argument = field)
}

# ---- Conversations --------------------------------------------------------------------------

# A conversation as pybridge takes it: a list of named lists, a data frame's rows becoming
# messages. A field that is a single NA is left out of its message (a column only some messages
# have); reticulate would pass it on as "NA" or TRUE. pybridge checks the rest and names the
# message.
tok_chat_messages <- function(messages) {
  if (is.data.frame(messages)) {
    messages[] <- lapply(messages, function(col) if (is.factor(col)) as.character(col) else col)
    messages <- lapply(seq_len(nrow(messages)), function(i) lapply(messages, `[[`, i))
  }
  if (!is.list(messages)) return(messages)
  for (i in seq_along(messages)) messages[i] <- list(tok_chat_message(messages[[i]], i))
  messages
}

tok_chat_message <- function(message, i) {
  if (!is.list(message)) return(message)
  single_na <- vapply(message, function(v) is.atomic(v) && length(v) == 1L && is.na(v), TRUE)
  message <- message[!single_na]
  if (anyNA(message, recursive = TRUE)) {
    hfbridge_abort("invalid_argument", sprintf("Message %d holds NA.", i),
                   argument = "messages", position = i)
  }
  if (length(not_utf8(unlist(message)))) {
    hfbridge_abort("invalid_argument", sprintf("Message %d is not valid UTF-8: %s", i,
                                               to_utf8_advice), argument = "messages", position = i)
  }
  message
}

# NULL, JSON text (a string; a class such as jsonlite's "json" is dropped), or a list.
tok_chat_tools <- function(tools) {
  if (is.null(tools)) return(NULL)
  if (!is.list(tools) && !is.character(tools)) {
    hfbridge_abort("invalid_argument", sprintf(
      "tools must be a list of tool schemas (or their JSON text), not %s.", describe_value(tools)),
      argument = "tools")
  }
  if (anyNA(tools, recursive = TRUE)) {
    hfbridge_abort("invalid_argument", "tools must not hold NA.", argument = "tools")
  }
  if (is.character(tools)) return(paste(as.character(tools), collapse = "\n"))
  tools
}
