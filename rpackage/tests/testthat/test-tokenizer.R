# Fixture tokenizers (built offline by pybridge.fixtures.tokenizers, shared with pytest) and the
# reference: Python's tokenizers library called directly through reticulate.

tokenizer_fixtures <- function() {
  hfbridge:::pybridge_module("fixtures.tokenizers")$ensure()
}

# The reference encodings of Python's tokenizers, as plain R lists; `pieces` is Python's
# text[s:e] for every token, taken from the text of the token's own sequence.
reference_encodings <- function(path, texts, pairs = NULL, add_special_tokens = TRUE,
                                setup = function(tok) NULL) {
  ref <- reticulate::import("tokenizers")$Tokenizer$from_file(path)
  ref$no_padding()
  ref$no_truncation()
  setup(ref)
  reticulate::py_run_string(paste(
    "def _hfb_reference(tok, texts, pairs, add_special_tokens):",
    "    texts = [texts] if isinstance(texts, str) else list(texts)",
    "    pairs = None if pairs is None else ([pairs] if isinstance(pairs, str) else list(pairs))",
    "    batch = texts if pairs is None else list(zip(texts, pairs))",
    "    encs = tok.encode_batch(batch, add_special_tokens=add_special_tokens)",
    "    def none(xs): return [-1 if x is None else x for x in xs]",
    "    def piece(i, q, s, e):",
    "        seq = texts if (q is None or q == 0) else pairs",
    "        return seq[i][s:e]",
    "    out = []",
    "    for i, e in enumerate(encs):",
    "        out.append(dict(ids=e.ids, tokens=e.tokens, attention_mask=e.attention_mask,",
    "            type_ids=e.type_ids, special_tokens_mask=e.special_tokens_mask,",
    "            word_ids=none(e.word_ids), sequence_ids=none(e.sequence_ids),",
    "            start=[s for s, _ in e.offsets], end=[t for _, t in e.offsets],",
    "            pieces=[piece(i, q, s, t) for (s, t), q in zip(e.offsets, e.sequence_ids)],",
    "            overflowing=len(e.overflowing)))",
    "    return out",
    sep = "\n"
  ))
  out <- reticulate::py$`_hfb_reference`(ref, texts, pairs, add_special_tokens)
  lapply(out, function(e) {
    int <- function(x) as.integer(unlist(x))
    list(ids = int(e$ids), tokens = as.character(unlist(e$tokens)),
         attention_mask = int(e$attention_mask), type_ids = int(e$type_ids),
         special_tokens_mask = int(e$special_tokens_mask),
         word_ids = int(e$word_ids), sequence_ids = int(e$sequence_ids),
         start = int(e$start), end = int(e$end), pieces = as.character(unlist(e$pieces)),
         overflowing = e$overflowing)
  })
}

# Compares hfbridge encodings with the reference, field by field, and checks that
# substr(text, start, end) is Python's text[s:e] for every token (vectorised over all tokens).
expect_same_encodings <- function(ours, ref, texts, pairs = NULL) {
  expect_identical(length(ours), length(ref))
  expect_true(all(vapply(ours, inherits, logical(1), "hfbridge_encoding")))
  field <- function(xs, name) lapply(xs, `[[`, name)
  na <- function(x) {
    x[x < 0L] <- NA_integer_
    x
  }
  for (name in c("ids", "tokens", "attention_mask", "type_ids", "special_tokens_mask")) {
    expect_identical(field(ours, name), field(ref, name), label = paste("encodings'", name))
  }
  expect_identical(field(ours, "word_ids"), lapply(field(ref, "word_ids"), na))
  expect_identical(field(ours, "sequence_ids"), lapply(field(ref, "sequence_ids"), na))
  starts <- lapply(ours, function(o) unname(o$offsets[, "start"]))
  ends <- lapply(ours, function(o) unname(o$offsets[, "end"]))
  expect_identical(starts, lapply(field(ref, "start"), function(s) s + 1L))
  expect_identical(ends, field(ref, "end"))
  which_text <- rep(seq_along(ours), lengths(starts))
  sequence <- as.integer(unlist(field(ours, "sequence_ids")))
  source <- texts[which_text]
  if (!is.null(pairs)) {
    second <- !is.na(sequence) & sequence == 1L
    source[second] <- pairs[which_text[second]]
  }
  pieces <- substr(source, as.integer(unlist(starts)), as.integer(unlist(ends)))
  expect_identical(pieces, as.character(unlist(field(ref, "pieces"))))
  expect_identical(lengths(field(ours, "overflowing")),
                   as.integer(unlist(field(ref, "overflowing"))))
}

# Random texts with ASCII words, accents and combining marks, CJK, kana, emoji (with ZWJ,
# skin tones and flags), runs of whitespace of several kinds, punctuation and any code point.
random_texts <- function(n, seed) {
  withr::local_seed(seed)
  pick <- function(codes, k) intToUtf8(codes[sample.int(length(codes), k, replace = TRUE)])
  emoji <- c("\U0001F600", "\U0001F680", "\U0001F44D\U0001F3FD", "\u2764\ufe0f", "\U0001F917",
             "\U0001F1EB\U0001F1F7", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "\u2728")
  any_code <- c(1:0xD7FF, 0xE000:0x10FFFF)
  pieces <- list(
    function(k) paste(sample(c(letters, LETTERS, 0:9), k, TRUE), collapse = ""),
    function(k) {
      pick(c(0xE9, 0xE8, 0xEA, 0xEB, 0xE0, 0xE7, 0xF1, 0xFC, 0xF6, 0xDF, 0x301, 0x308, 0x327),
           min(k, 4L))
    },
    function(k) pick(0x4E00:0x9FFF, min(k, 4L)),
    function(k) pick(0x3040:0x30FF, min(k, 4L)),
    function(k) paste(sample(emoji, min(k, 3L), TRUE), collapse = ""),
    function(k) pick(c(0x20, 0x09, 0x0A, 0x0D, 0xA0, 0x3000, 0x2009), min(k, 5L)),
    function(k) pick(utf8ToInt(".,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|"), min(k, 3L)),
    function(k) pick(any_code, min(k, 3L))
  )
  vapply(seq_len(n), function(i) {
    kinds <- sample.int(length(pieces), sample(0:12, 1L), replace = TRUE)
    parts <- vapply(kinds, function(j) pieces[[j]](sample.int(8L, 1L)), character(1))
    enc2utf8(paste(parts, collapse = ""))
  }, character(1))
}

fixed_texts <- c(
  "Hello, world!", "Deep learning is powerful.", "", " ", "a",
  "Caf\u00e9 cre\u0300me na\u00efve", "\U0001F468\u200d\U0001F469\u200d\U0001F467 family",
  "\U0001F1EB\U0001F1F7 flag, \U0001F44D\U0001F3FD thumbs",
  "\u6771\u4eac\u3068\u5927\u962a\u3000\u306b",
  "tabs\tand\nnewlines\r\n  end", "  leading and   multiple   spaces  ", strrep("x", 300),
  "Hugging Face hosts models, datasets and spaces; R users like data frames, matrices and vectors."
)
fixed_pairs <- rev(fixed_texts)

load_fixture <- function(name) {
  tok <- tokenizer_from_file(file.path(tokenizer_fixtures()[[name]], "tokenizer.json"))
  tok$no_padding()
  tok$no_truncation()
  tok
}

fixture_json <- function(name) file.path(tokenizer_fixtures()[[name]], "tokenizer.json")

test_that("the seeds' tokenizer code runs as written against the Hub mirror", {
  local_hub()
  fx <- tokenizer_fixtures()
  publish_repo("gpt2", fx$bpe)
  publish_repo("bert-base-uncased", fx$bert_base_uncased)
  # Evaluated as a user's script would be: `tokenizer` resolves to the package's generator,
  # and the assignment makes a new variable that shadows it.
  user <- new.env(parent = globalenv())
  seed_000 <- quote({
    tokenizer <- tokenizer$from_pretrained("gpt2")
    encoded <- tokenizer$encode("Hello, world!")
    ids <- encoded$ids
    decoded <- tokenizer$decode(encoded$ids)
    texts <- c("First sentence.", "Second sentence.")
    batch <- tokenizer$encode_batch(texts)
    batch_ids <- lapply(batch, function(x) x$ids)
  })
  seed_001 <- quote({
    tokenizer <- tokenizer_from_pretrained("bert-base-uncased")
    encoded <- tokenizer$encode("Deep learning is powerful.")
    bert_ids <- encoded$ids
    bert_tokens <- encoded$tokens
  })
  eval(seed_000, user)
  expect_s3_class(user$tokenizer, "hfbridge_tokenizer")
  expect_s3_class(hfbridge::tokenizer, "R6ClassGenerator")
  gpt2 <- reference_encodings(fixture_json("bpe"),
                              c("Hello, world!", "First sentence.", "Second sentence."))
  expect_identical(user$ids, gpt2[[1]]$ids)
  expect_identical(user$decoded, "Hello, world!")
  expect_identical(user$batch_ids, list(gpt2[[2]]$ids, gpt2[[3]]$ids))
  eval(seed_001, user)
  bert <- reference_encodings(fixture_json("bert_base_uncased"), "Deep learning is powerful.")
  expect_identical(user$bert_ids, bert[[1]]$ids)
  expect_identical(user$bert_tokens, c("[CLS]", "deep", "learning", "is", "powerful", ".", "[SEP]"))
})

test_that("encodings equal Python's tokenizers: WordPiece, byte-level BPE, Unigram", {
  for (name in c("minilm", "bpe", "unigram")) {
    tok <- load_fixture(name)
    for (special in c(TRUE, FALSE)) {
      ours <- tok$encode_batch(fixed_texts, add_special_tokens = special)
      ref <- reference_encodings(fixture_json(name), fixed_texts, add_special_tokens = special)
      expect_same_encodings(ours, ref, fixed_texts)
    }
    ours <- tok$encode_batch(fixed_texts, fixed_pairs)
    ref <- reference_encodings(fixture_json(name), fixed_texts, fixed_pairs)
    expect_same_encodings(ours, ref, fixed_texts, fixed_pairs)
    one <- tok$encode(fixed_texts[2], fixed_pairs[2])
    expect_same_encodings(list(one), ref[2], fixed_texts[2], fixed_pairs[2])
    expect_identical(tok$encode_ids(fixed_texts, fixed_pairs), lapply(ref, `[[`, "ids"))
  }
})

test_that("padding, truncation and overflowing pieces equal Python's tokenizers", {
  for (name in c("minilm", "bpe", "unigram")) {
    tok <- load_fixture(name)
    tok$enable_padding(direction = "left", pad_id = 3L, pad_type_id = 1L, pad_token = "<pad>",
                       pad_to_multiple_of = 4L)
    tok$enable_truncation(16L, stride = 2L, strategy = "longest_first")
    setup <- function(ref) {
      ref$enable_padding(direction = "left", pad_id = 3L, pad_type_id = 1L, pad_token = "<pad>",
                         pad_to_multiple_of = 4L)
      ref$enable_truncation(16L, stride = 2L, strategy = "longest_first")
    }
    ref <- reference_encodings(fixture_json(name), fixed_texts, fixed_pairs, setup = setup)
    ours <- tok$encode_batch(fixed_texts, fixed_pairs)
    expect_same_encodings(ours, ref, fixed_texts, fixed_pairs)
    expect_true(any(lengths(lapply(ours, `[[`, "overflowing")) > 0L))
    expect_identical(tok$encode_ids(fixed_texts, fixed_pairs), lapply(ref, `[[`, "ids"))
    expect_identical(tok$padding$pad_id, 3L)
    expect_identical(tok$truncation$max_length, 16L)
    expect_match(paste(capture.output(print(tok)), collapse = "\n"),
                 "padding: left, to the longest, a multiple of 4, with <pad> \\(id 3, type id 1\\)")
    tok$no_padding()$no_truncation()
    expect_null(tok$padding)
    expect_null(tok$truncation)
    expect_error(tok$padding <- list(), class = "hfbridge_error_invalid_argument")
  }
})

test_that("the matrix form equals Python's padded batch", {
  for (name in c("minilm", "bpe", "unigram")) {
    tok <- load_fixture(name)
    ref <- reference_encodings(fixture_json(name), fixed_texts, fixed_pairs, setup = function(r) {
      r$enable_padding(pad_to_multiple_of = 8L)
    })
    m <- tok$encode_matrix(fixed_texts, fixed_pairs, pad_to_multiple_of = 8L)
    expect_identical(names(m), c("ids", "attention_mask", "type_ids"))
    expect_identical(m$ids, do.call(rbind, lapply(ref, `[[`, "ids")))
    expect_identical(m$attention_mask, do.call(rbind, lapply(ref, `[[`, "attention_mask")))
    expect_identical(m$type_ids, do.call(rbind, lapply(ref, `[[`, "type_ids")))
    # Truncated and padded to max_length, left padding with the tokenizer's pad id.
    tok$enable_padding(direction = "left", pad_id = 1L)
    ref <- reference_encodings(fixture_json(name), fixed_texts, setup = function(r) {
      r$enable_padding(direction = "left", pad_id = 1L, length = 9L)
      r$enable_truncation(9L)
    })
    m <- tok$encode_matrix(fixed_texts, padding = "max_length", max_length = 9L)
    expect_identical(dim(m$ids), c(length(fixed_texts), 9L))
    expect_identical(m$ids, do.call(rbind, lapply(ref, `[[`, "ids")))
    expect_identical(m$attention_mask, do.call(rbind, lapply(ref, `[[`, "attention_mask")))
    expect_null(tok$truncation)
    expect_identical(tok$padding$direction, "left")
    empty <- tok$encode_matrix(character(0))
    expect_identical(dim(empty$ids), c(0L, 0L))
    expect_identical(tok$encode_ids(character(0)), list())
    expect_identical(tok$encode_batch(character(0)), list())
  }
})

test_that("the encodings of a batch are separate objects: changing one leaves the others", {
  tok <- load_fixture("minilm")
  batch <- tok$encode_batch(c("hello world", "deep learning", "hello world"))
  expect_identical(batch[[1]], batch[[3]])
  first <- batch[[1]]
  first$ids[1] <- 0L
  first$offsets[1, "start"] <- 99L
  colnames(first$offsets) <- c("a", "b")
  names(first)[1] <- "renamed"
  class(first) <- "other"
  first$overflowing[[1]] <- "x"
  batch[[2]]$tokens[2] <- "changed"
  expect_identical(batch[[1]], batch[[3]])
  expect_identical(batch[[3]], tok$encode("hello world"))
  expect_identical(tok$encode_batch("deep learning")[[1]]$tokens[-2], batch[[2]]$tokens[-2])
  expect_identical(names(batch[[3]])[1], "ids")
  expect_identical(colnames(batch[[3]]$offsets), c("start", "end"))
  expect_identical(batch[[3]]$overflowing, list())
  expect_s3_class(batch[[3]], "hfbridge_encoding")
})

test_that("decode and decode_batch equal Python's, from lists, matrices and encode_matrix()", {
  py_tok <- reticulate::import("tokenizers")$Tokenizer$from_file(fixture_json("bpe"))
  tok <- load_fixture("bpe")
  ids <- tok$encode_ids(fixed_texts)
  py_ids <- lapply(ids, function(x) as.list(x))
  expected <- as.character(py_tok$decode_batch(py_ids))
  expect_identical(tok$decode_batch(ids), expected)
  expect_identical(tok$decode(ids[[1]]), py_tok$decode(py_ids[[1]]))
  expect_identical(tok$decode_batch(tok$encode_matrix(fixed_texts)), expected)
  m <- tok$encode_matrix(fixed_texts)
  padded <- m$ids
  padded[m$attention_mask == 0L] <- NA
  expect_identical(tok$decode_batch(padded), expected)
  expect_identical(tok$decode_batch(list()), character(0))
  expect_identical(tok$decode(integer(0)), "")
  # Byte-level BPE round-trips any text.
  expect_identical(tok$decode_batch(ids), fixed_texts)
  bert <- load_fixture("minilm")
  enc <- bert$encode("Hello there", "general kenobi")
  expect_identical(bert$decode(enc$ids), "hello there general kenobi")
  expect_identical(bert$decode(enc$ids, skip_special_tokens = FALSE),
                   "[CLS] hello there [SEP] general kenobi [SEP]")
  expect_error(tok$decode(c(1, NA)), class = "hfbridge_error_invalid_argument")
  expect_error(tok$decode(-1), class = "hfbridge_error_invalid_argument")
  expect_error(tok$decode_batch("a"), class = "hfbridge_error_invalid_argument")
})

test_that("vocabulary helpers are vectorised and agree with Python's", {
  tok <- load_fixture("minilm")
  py_tok <- reticulate::import("tokenizers")$Tokenizer$from_file(fixture_json("minilm"))
  vocab <- tok$get_vocab()
  expect_type(vocab, "integer")
  expect_identical(length(vocab), 30522L)
  expect_identical(unname(vocab[c("[PAD]", "hello")]), c(0L, py_tok$token_to_id("hello")))
  expect_identical(tok$get_vocab_size(), 30522L)
  expect_identical(tok$token_to_id(c("hello", "zzzqqqxxx", "[CLS]")), c(7592L, NA, 101L))
  expect_identical(tok$id_to_token(c(101L, NA, 999999L, 7592L)), c("[CLS]", NA, NA, "hello"))
  expect_identical(tok$token_to_id(character(0)), integer(0))
  expect_identical(tok$add_tokens(c("brandnewtoken", "hello")),
                   py_tok$add_tokens(list("brandnewtoken", "hello")))
  expect_identical(tok$add_special_tokens("<extra>"), 1L)
  py_tok$add_special_tokens(list("<extra>"))
  expect_identical(tok$get_vocab_size(), py_tok$get_vocab_size())
  expect_identical(tok$get_vocab(), sort(unlist(py_tok$get_vocab())))
  expect_identical(tok$get_vocab_size(with_added_tokens = FALSE), 30522L)
  enc <- tok$encode("a brandnewtoken <extra>")
  expect_true(all(tok$token_to_id(c("brandnewtoken", "<extra>")) %in% enc$ids))
  out <- capture.output(print(tok))
  expect_match(out[1], "WordPiece model, vocabulary of 30524 tokens \\(2 added\\)")
  expect_match(out[2], "special tokens: \\[PAD\\] \\[UNK\\] \\[CLS\\] \\[SEP\\] \\[MASK\\] <extra>")
  expect_match(out[3], "padding: off")
  path <- tempfile(fileext = ".json")
  expect_identical(tok$save(path), path)
  again <- tokenizer$from_file(path)
  expect_identical(again$get_vocab(), tok$get_vocab())
  expect_identical(again$encode("a brandnewtoken <extra>")$ids, enc$ids)
  expect_match(paste(capture.output(print(enc)), collapse = "\n"), "hfbridge_encoding")
})

test_that("inputs: NA, empty strings, non-UTF-8, lists and bad arguments", {
  tok <- load_fixture("minilm")
  err <- tryCatch(tok$encode_batch(c("a", NA, "b", NA)), error = identity)
  expect_s3_class(err, "hfbridge_error_invalid_argument")
  expect_identical(err$positions, c(2L, 4L))
  expect_match(conditionMessage(err), "positions 2, 4")
  for (f in list(tok$encode, tok$encode_ids, tok$encode_matrix)) {
    expect_error(f(c(NA, "x")), class = "hfbridge_error_invalid_argument")
  }
  expect_error(tok$encode_batch("a", pairs = c("b", NA)), class = "hfbridge_error_invalid_argument")
  expect_error(tok$encode_batch(c("a", "b"), pairs = "c"),
               class = "hfbridge_error_invalid_argument")
  expect_error(tok$token_to_id(NA_character_), class = "hfbridge_error_invalid_argument")
  expect_identical(tok$encode("")$tokens, c("[CLS]", "[SEP]"))
  expect_identical(tok$encode("", add_special_tokens = FALSE)$ids, integer(0))
  latin1 <- "caf\xe9"
  Encoding(latin1) <- "latin1"
  expect_identical(tok$encode(latin1)$tokens, c("[CLS]", "cafe", "[SEP]"))
  invalid <- "caf\xe9"
  Encoding(invalid) <- "UTF-8"
  err <- tryCatch(tok$encode(c("ok", invalid)), error = identity)
  expect_s3_class(err, "hfbridge_error_invalid_argument")
  expect_identical(err$positions, 2L)
  expect_match(conditionMessage(err), "`texts` is not valid UTF-8 at position 2: convert it")
  bytes <- "caf\xc3\xa9"
  Encoding(bytes) <- "bytes"
  expect_error(tok$encode(bytes), class = "hfbridge_error_invalid_argument")
  expect_identical(length(tok$encode(list("a", "b"))), 2L)
  expect_identical(tok$encode(factor("hello"))$tokens, c("[CLS]", "hello", "[SEP]"))
  expect_error(tok$encode(1:3), class = "hfbridge_error_invalid_argument")
  expect_error(tok$encode("a", add_special_tokens = NA), class = "hfbridge_error_invalid_argument")
  expect_error(tok$enable_truncation(0), class = "hfbridge_error_invalid_argument")
  expect_error(tok$enable_truncation(5, strategy = "middle"),
               class = "hfbridge_error_invalid_argument")
  expect_error(tok$enable_padding(direction = "up"), class = "hfbridge_error_invalid_argument")
  expect_error(tok$encode_matrix("a", padding = "max_length"),
               class = "hfbridge_error_invalid_argument")
  expect_error(tokenizer_from_file(tempfile()), class = "hfbridge_error_invalid_argument")
  bad <- tempfile(fileext = ".json")
  writeLines("{not json", bad)
  err <- tryCatch(tokenizer_from_file(bad), error = identity)
  expect_s3_class(err, "hfbridge_error_invalid_file")
  expect_identical(err$path, bad)
  expect_error(tokenizer$new("not python"), class = "hfbridge_error_invalid_argument")
})

test_that("padding past the memory limit is refused with its size, before it is allocated", {
  tok <- load_fixture("minilm")
  withr::local_options(hfbridge.max_padding_bytes = 1e6)
  refused <- function(expr, argument, cells) {
    err <- tryCatch(expr, error = identity)
    expect_s3_class(err, "hfbridge_error_memory")
    expect_identical(err$argument, argument)
    expect_identical(err$cells, cells)
    expect_gt(err$bytes, 1e6)
    expect_identical(err$limit, 1e6)
    expect_match(conditionMessage(err), sprintf("%.0f token cells", cells))
  }
  # 100 texts x 1000 tokens: 1e5 cells, over 1 MB as three integer matrices.
  refused(tok$encode_matrix(rep("a", 100), max_length = 1000, padding = "max_length"),
          "max_length", 1e5)
  refused(tok$encode_matrix(rep("a", 100), pad_to_multiple_of = 1000), "pad_to_multiple_of", 1e5)
  padded <- tok$encode_matrix(rep("a", 10), max_length = 20, padding = "max_length")
  expect_identical(dim(padded$ids), c(10L, 20L))
  # A length that no single encoding fits in is refused when it is set ...
  refused(tok$enable_padding(length = 1e5), "length", 1e5)
  expect_null(tok$padding)
  # ... one that fits one encoding but not the batch, when the batch is encoded.
  tok$enable_padding(length = 1000)
  refused(tok$encode_batch(rep("a", 100)), "length", 1e5)
  refused(tok$encode(rep("a", 100)), "length", 1e5)
  refused(tok$encode_ids(rep("a", 100)), "length", 1e5)
  expect_length(tok$encode("a")$ids, 1000L)
  tok$enable_padding(pad_to_multiple_of = 1000)
  refused(tok$encode_batch(rep("a", 100)), "pad_to_multiple_of", 1e5)
  tok$no_padding()
  expect_identical(tok$encode("a")$tokens, c("[CLS]", "a", "[SEP]"))
  withr::local_options(hfbridge.max_padding_bytes = -1)
  expect_error(tok$encode("a"), class = "hfbridge_error_invalid_argument")
})

test_that("an absurd max_length or padding length is refused with its size, not allocated", {
  tok <- load_fixture("minilm")
  err <- tryCatch(tok$encode_matrix(c("a", "b"), max_length = 2^31 - 1, padding = "max_length"),
                  error = identity)
  expect_s3_class(err, "hfbridge_error_memory")
  expect_identical(err$cells, 2 * (2^31 - 1))
  expect_gt(err$bytes, err$limit)
  expect_match(conditionMessage(err), "4294967294 token cells, which need about 128.0 GiB")
  expect_error(tok$enable_padding(length = 2^31 - 1), class = "hfbridge_error_memory")
  expect_error(tok$enable_padding(pad_to_multiple_of = 2^31 - 1), class = "hfbridge_error_memory")
  expect_null(tok$padding)
  expect_identical(dim(tok$encode_matrix(c("a", "b"), max_length = 4, padding = "max_length")$ids),
                   c(2L, 4L))
})

test_that("a tokenizer restored from an earlier session fails with a classed error", {
  tok <- load_fixture("bpe")
  path <- tempfile(fileext = ".rds")
  saveRDS(tok, path)
  old <- readRDS(path)
  expect_error(old$encode("hello"), class = "hfbridge_error_invalid_argument")
  expect_identical(tok$encode("hello")$ids, load_fixture("bpe")$encode("hello")$ids)
})

test_that("1000 random texts: every field and substr() of the offsets equal Python's", {
  texts <- random_texts(1200, seed = 42)
  pairs <- random_texts(1200, seed = 43)
  expect_true(any(grepl("\U0001F468", texts, fixed = TRUE)))
  expect_true(any(grepl("[\u4e00-\u9fff]", texts)))
  for (name in c("minilm", "bpe", "unigram")) {
    tok <- load_fixture(name)
    ours <- tok$encode_batch(texts)
    ref <- reference_encodings(fixture_json(name), texts)
    expect_same_encodings(ours, ref, texts)
    expect_identical(tok$encode_ids(texts), lapply(ref, `[[`, "ids"))
    m <- tok$encode_matrix(texts)
    expect_identical(t(m$ids)[t(m$attention_mask) == 1L], unlist(lapply(ref, `[[`, "ids")))
    some <- 1:200
    ours <- tok$encode_batch(texts[some], pairs[some])
    ref <- reference_encodings(fixture_json(name), texts[some], pairs[some])
    expect_same_encodings(ours, ref, texts[some], pairs[some])
  }
})

test_that("loading by repo id through the mirror, with a revision", {
  local_hub()
  fx <- tokenizer_fixtures()
  repo <- file.path(tempfile("tok-git-"), "repo")
  dir.create(repo, recursive = TRUE)
  git <- function(...) {
    out <- processx::run("git", c("-C", repo, ...), env = c(
      "current", GIT_AUTHOR_NAME = "t", GIT_AUTHOR_EMAIL = "t@t", GIT_COMMITTER_NAME = "t",
      GIT_COMMITTER_EMAIL = "t@t"))
    trimws(out$stdout)
  }
  git("init", "-q", "-b", "main")
  file.copy(fixture_json("unigram"), file.path(repo, "tokenizer.json"))
  git("add", ".")
  git("commit", "-q", "-m", "unigram")
  git("tag", "v1")
  first <- git("rev-parse", "HEAD")
  file.copy(fixture_json("bpe"), file.path(repo, "tokenizer.json"), overwrite = TRUE)
  git("commit", "-q", "-am", "bpe")
  publish_repo("hfbridge-test-rtok/versions", repo)

  main <- tokenizer_from_pretrained("hfbridge-test-rtok/versions")
  v1 <- tokenizer$from_pretrained("hfbridge-test-rtok/versions", revision = "v1")
  by_commit <- tokenizer_from_pretrained("hfbridge-test-rtok/versions", revision = first)
  expect_match(capture.output(print(main))[1], "BPE model")
  expect_match(capture.output(print(v1))[1], "Unigram model")
  expect_identical(by_commit$get_vocab(), v1$get_vocab())
  ref <- reference_encodings(fixture_json("unigram"), fixed_texts)
  expect_same_encodings(v1$encode_batch(fixed_texts), ref, fixed_texts)
  expect_error(tokenizer_from_pretrained("hfbridge-test-rtok/versions", revision = "v9"),
               class = "hfbridge_error_revision_not_found")
  expect_error(tokenizer_from_pretrained("hfbridge-test-rtok/absent"),
               class = "hfbridge_error_repo_not_found")
})

test_that("a repo without tokenizer.json is converted as transformers' AutoTokenizer does", {
  local_hub()
  fx <- tokenizer_fixtures()
  publish_repo("hfbridge-test-rtok/gpt2-slow", fx$bpe_vocab_only)
  tok <- tokenizer_from_pretrained("hfbridge-test-rtok/gpt2-slow")
  auto <- reticulate::import("transformers")$AutoTokenizer$from_pretrained(fx$bpe_vocab_only,
                                                                          use_fast = TRUE)
  expected <- lapply(auto(as.list(fixed_texts))$input_ids, function(x) as.integer(unlist(x)))
  expect_identical(tok$encode_ids(fixed_texts), expected)
  bert <- tokenizer_from_pretrained(fx$wordpiece_vocab_only)
  auto <- reticulate::import("transformers")$AutoTokenizer$from_pretrained(fx$wordpiece_vocab_only,
                                                                          use_fast = TRUE)
  expected <- lapply(auto(as.list(fixed_texts), as.list(fixed_pairs))$input_ids,
                     function(x) as.integer(unlist(x)))
  expect_identical(bert$encode_ids(fixed_texts, fixed_pairs), expected)
})

test_that("tokenizer_train() builds bpe, wordpiece and unigram tokenizers from texts or files", {
  fixtures <- hfbridge:::pybridge_module("fixtures.tokenizers")
  texts <- as.character(fixtures$training_texts(600L, seed = 5L))
  bpe <- tokenizer_train(texts, type = "bpe", vocab_size = 300)
  expect_match(capture.output(print(bpe))[1], "BPE model, vocabulary of 300 tokens")
  expect_identical(bpe$decode(bpe$encode(fixed_texts[6])$ids), fixed_texts[6])
  # Equal to the same trainer written out with Python's tokenizers.
  tk <- reticulate::import("tokenizers")
  ref <- tk$Tokenizer(tk$models$BPE())
  ref$pre_tokenizer <- tk$pre_tokenizers$ByteLevel(add_prefix_space = FALSE)
  ref$decoder <- tk$decoders$ByteLevel()
  ref$post_processor <- tk$processors$ByteLevel(trim_offsets = FALSE)
  trainer <- tk$trainers$BpeTrainer(vocab_size = 300L, special_tokens = list("<|endoftext|>"),
                                    initial_alphabet = tk$pre_tokenizers$ByteLevel$alphabet(),
                                    show_progress = FALSE)
  ref$train_from_iterator(texts, trainer)
  ref_vocab <- unlist(ref$get_vocab())
  expect_identical(bpe$get_vocab(), sort(ref_vocab))
  path <- tempfile(fileext = ".json")
  ref$save(path)
  ref_enc <- reference_encodings(path, fixed_texts)
  expect_same_encodings(bpe$encode_batch(fixed_texts), ref_enc, fixed_texts)

  wp <- tokenizer_train(texts, type = "wordpiece", vocab_size = 200, min_frequency = 2)
  expect_identical(wp$encode("hello")$tokens[c(1, length(wp$encode("hello")$tokens))],
                   c("[CLS]", "[SEP]"))
  expect_identical(unname(wp$get_vocab()[1:5]), 0:4)
  expect_identical(names(wp$get_vocab())[1:5], c("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"))
  corpus <- tempfile(fileext = ".txt")
  writeLines(texts, corpus, useBytes = TRUE)
  uni <- tokenizer_train(files = corpus, type = "unigram", vocab_size = 150,
                         special_tokens = c("<pad>", "</s>", "<unk>", "<mask>"))
  expect_identical(uni$token_to_id(c("<pad>", "</s>", "<unk>", "<mask>")), 0:3)
  expect_identical(tail(uni$encode("hello")$tokens, 1), "</s>")
  expect_error(tokenizer_train(texts, type = "unigram", min_frequency = 2),
               class = "hfbridge_error_invalid_argument")
  expect_error(tokenizer_train(), class = "hfbridge_error_invalid_argument")
  expect_error(tokenizer_train(c("a", NA)), class = "hfbridge_error_invalid_argument")
  expect_error(tokenizer_train(files = tempfile()), class = "hfbridge_error_invalid_argument")
})

test_that("a gated repo needs its token, passed as token or auth_token, never shown", {
  local_hub()
  secret <- "hf_tokentest0123456789"
  publish_repo("hfbridge-test-rtok/gated", tokenizer_fixtures()$bpe)
  mirror_config(list(gated = list("hfbridge-test-rtok/gated" = list(secret))))
  err <- tryCatch(tokenizer_from_pretrained("hfbridge-test-rtok/gated"), error = identity)
  expect_s3_class(err, "hfbridge_error_gated")
  err <- tryCatch(
    tokenizer_from_pretrained("hfbridge-test-rtok/gated", token = "hf_wrongwrongwrong1"),
    error = identity
  )
  expect_true(inherits(err, "hfbridge_error_gated") || inherits(err, "hfbridge_error_auth"))
  expect_false(grepl("hf_wrongwrongwrong1", conditionMessage(err), fixed = TRUE))
  tok <- tokenizer_from_pretrained("hfbridge-test-rtok/gated", token = secret)
  expect_identical(tok$encode("Hello, world!")$ids,
                   reference_encodings(fixture_json("bpe"), "Hello, world!")[[1]]$ids)
  again <- tokenizer$from_pretrained("hfbridge-test-rtok/gated", auth_token = secret)
  expect_false(any(grepl(secret, capture.output(print(again)), fixed = TRUE)))
})

test_that("a repo with only a sentencepiece model is converted as AutoTokenizer does", {
  skip_if_not(reticulate::py_module_available("sentencepiece") &&
                reticulate::py_module_available("google.protobuf"),
              "sentencepiece and protobuf are not installed")
  folder <- hfbridge:::pybridge_module("fixtures.tokenizers")$ensure(
    names = list("sentencepiece_only"))$sentencepiece_only
  local_hub()
  publish_repo("hfbridge-test-rtok/t5-spiece", folder)
  tok <- tokenizer_from_pretrained("hfbridge-test-rtok/t5-spiece")
  auto <- reticulate::import("transformers")$AutoTokenizer$from_pretrained(folder, use_fast = TRUE)
  expected <- lapply(auto(as.list(fixed_texts))$input_ids, function(x) as.integer(unlist(x)))
  expect_identical(tok$encode_ids(fixed_texts), expected)
  expect_match(capture.output(print(tok))[1], "Unigram model")
})
