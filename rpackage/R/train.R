# Fine-tuning: R checks the data.frame and coerces its columns, pybridge.train runs transformers'
# Trainer in a worker thread; job_run() steps through it under a cli progress bar and stops it
# cleanly on an interrupt; R builds the metrics data.frame.

#' Fine-tune a transformers model on an R data.frame
#'
#' Trains a model with transformers' `Trainer`: a text classifier on a data.frame of texts and
#' labels (`task = "text-classification"`), or a causal language model (GPT-2 style) on a
#' character vector (`task = "text-generation"`). The trained model is saved in `output_dir`
#' as safetensors, with its config and tokenizer, so that [pipeline()] loads it and
#' `hub_push_model()` can publish it. For classification the config's `id2label` and `label2id`
#' are the R labels: `pipeline("text-classification", output_dir)` returns them.
#'
#' Labels may be a factor (its levels, in order, are the classes), a character vector or
#' integers (sorted values). The same `seed` gives the same metrics, and the same losses as a
#' plain Python `Trainer` run on the same data (texts tokenized with truncation at the model's
#' limit, dynamic padding, evaluation each epoch).
#'
#' A progress bar shows the steps and the last logged loss. An interrupt (Ctrl-C, or Esc in
#' RStudio) stops training at the end of the current step and saves a checkpoint in
#' `output_dir/checkpoints`; then an `hfbridge_error_interrupted` condition is signalled, and
#' the same call with `resume = TRUE` continues from the checkpoint. Checkpoints are removed once
#' training finishes, so that the folder holds only the model.
#'
#' With `lora`, only low-rank adapters (peft's LoRA) and the classification head train. `lora`
#' is a list with `r` (rank, 8), `alpha` (16), `dropout` (0.05), `target_modules` (`NULL`:
#' peft's default for the architecture, e.g. `c("query", "value")` for BERT, or the body's linear
#' layers where peft has none, such as DistilBERT) and `merge`
#' (`FALSE`: save the adapter; `TRUE`: merge it into the weights and save a plain model).
#' `lora = TRUE` takes these defaults. An adapter folder holds `adapter_config.json` and
#' `adapter_model.safetensors`, and beside them the base model's weights and config with the
#' labels, so that `pipeline()` loads base plus adapter from the folder alone, offline.
#'
#' @param model A Hub repo id or a local folder of a transformers model. For classification
#'   any encoder (a new head is added); for text generation a model with a causal LM head.
#' @param train A data.frame with the `text` column (and the `label` column for
#'   classification); for text generation also a character vector.
#' @param eval `NULL`, or held-out data like `train`, evaluated after each epoch.
#' @param text,label The names of the text and label columns.
#' @param task `"text-classification"` or `"text-generation"`.
#' @param epochs Training epochs (may be fractional).
#' @param learning_rate The AdamW learning rate (linear decay, as `Trainer`'s default).
#' @param batch_size Texts per step (training and evaluation).
#' @param output_dir Where to save the model. `NULL`: a new folder under [tempdir()].
#' @param seed The random seed (head initialisation, shuffling, dropout).
#' @param lora `NULL` (train every weight), `TRUE`, or a list of LoRA settings (see Details).
#' @param ... Fields of transformers' `TrainingArguments`, such as `weight_decay = 0.01`,
#'   `warmup_steps = 10`, `logging_steps = 5` or `save_steps = 100`. An unknown field is an
#'   error.
#' @param resume If `TRUE`, continue from the last checkpoint in `output_dir`.
#' @param revision A branch, tag or commit of the model repository.
#' @param token A Hub token for private or gated models; by default `HF_TOKEN` or the token
#'   file. Never printed nor kept in the result.
#' @param quiet If `TRUE`, no progress bar.
#' @return An object of class `hfbridge_fine_tune`, a list with `metrics` (a data.frame with
#'   one row per logging step and per evaluation: `epoch`, `step`, `loss`, `grad_norm`,
#'   `learning_rate`, `eval_loss`, and for classification `eval_accuracy` and `eval_f1_macro`,
#'   `NA` where a row has no value), `output_dir`, `task`, `model`, `labels` (the classes, in
#'   order of their ids), `trainable` and `parameters` (counts), `lora`, `merged`,
#'   `resumed_from` (the checkpoint's step, 0 for a fresh run) and `summary` (Trainer's final
#'   `train_runtime`, `train_loss`, ...). Printing it shows the final metrics. After a resumed
#'   run, `metrics` also holds the rows logged before the interruption.
#' @family training
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' reviews <- data.frame(
#'   text = c("The food was excellent.", "The service was slow and disappointing.",
#'            "A wonderful, friendly place.", "Cold food and a bad wait."),
#'   label = factor(c("positive", "negative", "positive", "negative"))
#' )
#' fit <- fine_tune("distilbert-base-uncased", reviews, epochs = 1,
#'                  output_dir = file.path(tempdir(), "my-model"))
#' fit$metrics
#' classifier <- pipeline("text-classification", fit$output_dir)
#' classifier("What a wonderful meal.")
#'
#' # LoRA, merged into the weights
#' fit <- fine_tune("distilbert-base-uncased", reviews, epochs = 1,
#'                  lora = list(r = 8, merge = TRUE))
#'
#' # A small GPT-2 continued on your own texts
#' fit <- fine_tune("gpt2", c("First text.", "Second text."), task = "text-generation",
#'                  epochs = 1)
#' pipeline("text-generation", fit$output_dir)("First", max_new_tokens = 5)
fine_tune <- function(model, train, eval = NULL, text = "text", label = "label",
                      task = "text-classification", epochs = 3, learning_rate = 2e-5,
                      batch_size = 16, output_dir = NULL, seed = 42, lora = NULL, ...,
                      resume = FALSE, revision = "main", token = NULL, quiet = FALSE) {
  model <- check_string(model, "model")
  task <- check_choice(task, c("text-classification", "text-generation"), "task")
  classify <- identical(task, "text-classification")
  data <- train_data(train, "train", text, if (classify) label)
  held_out <- if (!is.null(eval)) train_data(eval, "eval", text, if (classify) label)
  classes <- if (classify) train_classes(data$labels)
  check_flags(resume = resume, quiet = quiet)
  hub_check_token(token)
  if (is.null(output_dir)) {
    if (resume) {
      hfbridge_abort("invalid_argument", paste(
        "resume = TRUE continues from the checkpoints in `output_dir`: give the output_dir of",
        "the interrupted run."), argument = "output_dir")
    }
    output_dir <- tempfile("fine-tune-")
  }
  job <- py_call("train", "start", model, as.list(data$texts),
                 train_labels = train_label_list(data$labels),
                 eval_texts = if (!is.null(held_out)) as.list(held_out$texts),
                 eval_labels = train_label_list(held_out$labels),
                 classes = if (classify) as.list(classes), task = task,
                 epochs = train_positive(epochs, "epochs"),
                 learning_rate = train_positive(learning_rate, "learning_rate"),
                 batch_size = check_count(batch_size, "batch_size", 1L),
                 output_dir = path.expand(check_string(output_dir, "output_dir")),
                 seed = check_count(seed, "seed", 0L), lora = train_lora(lora), resume = resume,
                 args = pipeline_named_args(list(...)),
                 revision = check_string(revision, "revision"), env = hf_env(), token = token,
                 quiet = quiet)
  # Slices of time, not one call per step: R holds the GIL between calls, which pauses the
  # worker. 2 s when quiet, for a prompt response to an interrupt.
  res <- job_run(job, "Fine-tuning", quiet, seconds = if (quiet) 2 else 0.5, whole = FALSE,
                 format = paste(
                   "Fine-tuning {cli::pb_bar} {cli::pb_current}/{cli::pb_total} steps",
                   "| loss {train_loss_text(state$loss)} | ETA {cli::pb_eta}"),
                 interrupted = train_interrupted)
  train_result(res, model)
}

#' @export
print.hfbridge_fine_tune <- function(x, ...) {
  cat(format(x), sep = "\n")
  invisible(x)
}

#' @export
format.hfbridge_fine_tune <- function(x, ...) {
  m <- x$metrics
  last <- function(col) {
    v <- if (col %in% names(m)) m[[col]][!is.na(m[[col]])] else numeric(0)
    if (length(v)) format(signif(v[length(v)], 4)) else NA
  }
  finals <- c(loss = last("loss"), eval_loss = last("eval_loss"),
              eval_accuracy = last("eval_accuracy"), eval_f1_macro = last("eval_f1_macro"))
  finals <- finals[!is.na(finals)]
  share <- if (x$parameters > 0) sprintf(" (%.2f%%)", 100 * x$trainable / x$parameters) else ""
  c(sprintf("<hfbridge fine-tuned model> %s", x$task),
    sprintf("  from:       %s%s", x$model, train_lora_label(x)),
    sprintf("  output_dir: %s", x$output_dir),
    if (length(x$labels)) sprintf("  labels:     %s", paste(x$labels, collapse = ", ")),
    sprintf("  trained:    %s of %s parameters%s", format(x$trainable, big.mark = ","),
            format(x$parameters, big.mark = ","), share),
    sprintf("  steps:      %d (%s epochs)", max(c(0L, m$step)), last("epoch")),
    sprintf("  final:      %s", paste(names(finals), finals, sep = " = ", collapse = ", ")))
}

# ---- data -------------------------------------------------------------------------------------

# The texts (and labels) of `data`, checked: a data.frame with those columns, or for text
# generation also a character vector.
train_data <- function(data, arg, text, label) {
  text <- check_string(text, "text")
  if (is.null(label) && (is.character(data) || is.factor(data))) {
    return(list(texts = train_texts(data, arg)))
  }
  if (!is.data.frame(data)) {
    hfbridge_abort("invalid_argument", sprintf(
      "`%s` must be a data.frame with the column%s %s%s, not %s.", arg,
      if (is.null(label)) "" else "s", text, if (is.null(label)) "" else paste(" and", label),
      describe_value(data)), argument = arg)
  }
  columns <- c(text, if (!is.null(label)) check_string(label, "label"))
  missing <- setdiff(columns, names(data))
  if (length(missing)) {
    hfbridge_abort("invalid_argument", sprintf(
      "`%s` has no column %s (it has %s). Name the columns with text = and label =.", arg,
      paste0("\"", missing, "\"", collapse = ", "), paste(names(data), collapse = ", ")),
      argument = if (missing[1] == text) "text" else "label", column = missing)
  }
  if (nrow(data) == 0L) {
    hfbridge_abort("invalid_argument", sprintf("`%s` has no rows.", arg), argument = arg)
  }
  out <- list(texts = train_texts(data[[text]], arg, text))
  if (!is.null(label)) out$labels <- train_labels(data[[label]], arg, label)
  out
}

train_texts <- function(x, arg, column = NULL) {
  where <- sprintf("`%s`", arg)
  if (!is.null(column)) where <- sprintf("Column \"%s\" of `%s`", column, arg)
  argument <- if (is.null(column)) arg else "text"
  if (is.factor(x)) x <- as.character(x)
  if (!is.character(x)) {
    hfbridge_abort("invalid_argument", sprintf("%s must hold texts (character), not %s.", where,
                                               class(x)[1L]), argument = argument)
  }
  check_text_values(x, where, argument, "row")
}

train_labels <- function(x, arg, column) {
  if (!(is.factor(x) || is.character(x) || is.numeric(x) || is.logical(x)) ||
      (is.numeric(x) && any(x != round(x), na.rm = TRUE))) {
    hfbridge_abort("invalid_argument", sprintf(
      "Column \"%s\" of `%s` must be a factor, character or integer labels, not %s.", column,
      arg, class(x)[1L]), argument = "label")
  }
  na <- which(is.na(x))
  if (length(na)) {
    hfbridge_abort("invalid_argument", sprintf(
      "Column \"%s\" of `%s` has NA labels at row%s %s.", column, arg,
      if (length(na) > 1L) "s" else "", format_positions(na)), argument = "label", rows = na)
  }
  x
}

# The classes in id order: a factor's levels (those used), else the sorted values.
train_classes <- function(labels) {
  if (is.factor(labels)) return(levels(droplevels(labels)))
  as.character(sort(unique(labels)))
}

train_label_list <- function(labels) {
  if (is.null(labels)) return(NULL)
  as.list(enc2utf8(as.character(labels)))
}

train_positive <- function(x, arg) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) || x <= 0) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must be a positive number, not %s.", arg,
                                               describe_value(x)), argument = arg)
  }
  as.numeric(x)
}

train_lora <- function(lora) {
  if (is.null(lora) || isFALSE(lora)) return(NULL)
  if (isTRUE(lora)) return(list())
  known <- c("r", "alpha", "dropout", "target_modules", "merge")
  if (!is.list(lora) || (length(lora) && (is.null(names(lora)) ||
                                          !all(names(lora) %in% known)))) {
    hfbridge_abort("invalid_argument", sprintf(
      "`lora` must be NULL, TRUE or a named list of %s.", paste(known, collapse = ", ")),
      argument = "lora")
  }
  if (!is.null(lora$target_modules)) lora$target_modules <- as.list(lora$target_modules)
  lora
}

# ---- running ---------------------------------------------------------------------------------

# The error of an interrupt: the job has stopped with a checkpoint.
train_interrupted <- function(state) {
  hfbridge_abort("interrupted", sprintf(paste(
    "Training was interrupted at step %d of %d. The checkpoint is in %s: run the same",
    "fine_tune() call with resume = TRUE to continue."), state$step, state$total,
    state$checkpoint), step = state$step, checkpoint = state$checkpoint)
}

train_loss_text <- function(loss) {
  if (is.na(loss)) "..." else format(round(loss, 4), nsmall = 4)
}

train_result <- function(res, model) {
  metrics <- as.data.frame(lapply(res$metrics, as.vector), stringsAsFactors = FALSE)
  metrics[] <- lapply(metrics, function(v) {
    if (is.double(v)) v[is.nan(v)] <- NA_real_
    v
  })
  structure(list(
    metrics = metrics, output_dir = res$output_dir, task = res$task, model = model,
    labels = as.character(unlist(res$classes)), trainable = res$trainable,
    parameters = res$parameters, lora = res$lora, merged = res$merged,
    resumed_from = as.integer(res$resumed_from), summary = unlist(res$summary)
  ), class = "hfbridge_fine_tune")
}

train_lora_label <- function(x) {
  if (!x$lora) return("")
  if (x$merged) " + LoRA (merged)" else " + LoRA adapter"
}
