#' Train a tokenizer
#'
#' Trains a new tokenizer with the Hugging Face `tokenizers` trainers, on a character vector
#' of texts or on text files (read line by line):
#' - `"bpe"`: byte-level BPE as GPT-2 (any text is encoded, nothing is unknown); special
#'   tokens default to `<|endoftext|>`;
#' - `"wordpiece"`: WordPiece as BERT (lowercased, accents stripped, `[CLS] ... [SEP]` added);
#'   special tokens default to `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`;
#' - `"unigram"`: Unigram as T5 and sentencepiece (NFKC, words marked with U+2581, `</s>`
#'   added); special tokens default to `<pad>`, `</s>`, `<unk>`.
#'
#' @param texts A character vector of training texts (or `NULL` with `files`).
#' @param type The model: `"bpe"`, `"wordpiece"` or `"unigram"`.
#' @param vocab_size The largest vocabulary to learn; `NULL` for the trainer's default (30000
#'   for bpe and wordpiece, 8000 for unigram). Small corpora give smaller vocabularies.
#' @param min_frequency For bpe and wordpiece, how often a pair must occur to be merged;
#'   `NULL` for the trainer's default.
#' @param special_tokens A character vector of special tokens, placed first in the
#'   vocabulary; `NULL` for the defaults above.
#' @param files Paths of text files to train on, instead of `texts`.
#' @param show_progress Whether to show the trainer's progress bar.
#' @return A tokenizer (see [tokenizer]).
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' texts <- c("Deep learning is powerful.", "Hugging Face hosts models.", "Hello, world!")
#' tok <- tokenizer_train(texts, type = "bpe", vocab_size = 300)
#' tok$encode("Hello, models!")$tokens
#' tok$save(file.path(tempdir(), "trained-tokenizer.json"))
tokenizer_train <- function(texts = NULL, type = c("bpe", "wordpiece", "unigram"),
                            vocab_size = NULL, min_frequency = NULL, special_tokens = NULL,
                            files = NULL, show_progress = FALSE) {
  type <- check_choice(type, c("bpe", "wordpiece", "unigram"), "type")
  if (is.null(texts) == is.null(files)) {
    hfbridge_abort("invalid_argument", "Give either `texts` or `files` to train on.",
                   argument = "texts")
  }
  if (!is.null(texts)) texts <- check_texts(texts, "texts")
  if (!is.null(files)) files <- path.expand(check_texts(files, "files"))
  if (!is.null(special_tokens)) {
    special_tokens <- as.list(check_texts(special_tokens, "special_tokens"))
  }
  handle <- py_call(
    "tokenizer_train", "train", texts = texts, files = if (!is.null(files)) as.list(files),
    model = type, vocab_size = check_optional_count(vocab_size, "vocab_size"),
    min_frequency = if (!is.null(min_frequency)) check_count(min_frequency, "min_frequency", 0L),
    special_tokens = special_tokens, show_progress = check_flag(show_progress, "show_progress")
  )
  tokenizer$new(handle)
}
