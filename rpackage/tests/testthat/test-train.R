# fine_tune() on the tiny fixture models: a separable toy set (two disjoint vocabularies), checked
# against a plain Python Trainer run on the same data (pybridge.fixtures.trainer_reference).

train_fixtures <- function() {
  tm <- hfbridge:::pybridge_module("fixtures.task_models")
  folders <- tm$ensure(names = list("bert", "gpt2", "t5"))
  publish_repo("hfbridge-tiny/train-bert", folders$bert)
  folders
}

# Tiny models gain nothing from threads and lose a lot on a busy 2-core machine.
train_one_thread <- function(env = parent.frame()) {
  torch <- hfbridge:::pybridge_module("models")$import_torch()
  before <- torch$get_num_threads()
  torch$set_num_threads(1L)
  withr::defer(torch$set_num_threads(before), envir = env)
}

toy_data <- function(n = 200L) {
  ref <- hfbridge:::pybridge_module("fixtures.trainer_reference")
  d <- as.data.frame(ref$toy_classification(as.integer(n)), stringsAsFactors = FALSE)
  d$label <- factor(d$label, levels = c("beta", "alpha"))   # not alphabetical on purpose
  list(train = d[1:160, ], eval = d[161:200, ])
}

test_that("a separable toy set: accuracy >= 0.9, the loss falls, pipeline() returns R labels", {
  local_hub()
  train_one_thread()
  train_fixtures()
  d <- toy_data()
  secret <- "hf_trainsecret123456"
  out <- withr::local_tempdir()
  fit <- fine_tune("hfbridge-tiny/train-bert", d$train, d$eval, epochs = 3,
                   learning_rate = 5e-3, output_dir = out, token = secret, quiet = TRUE)
  expect_s3_class(fit, "hfbridge_fine_tune")
  m <- fit$metrics
  expect_true(all(c("epoch", "step", "loss", "eval_loss", "eval_accuracy", "eval_f1_macro")
                  %in% names(m)))
  expect_type(m$step, "integer")
  evals <- m[!is.na(m$eval_loss), ]
  expect_identical(nrow(evals), 3L)                     # one evaluation per epoch
  expect_gte(evals$eval_accuracy[3], 0.9)
  expect_gte(evals$eval_f1_macro[3], 0.9)
  losses <- m$loss[!is.na(m$loss)]
  expect_lt(mean(utils::tail(losses, 3)), 0.5 * mean(utils::head(losses, 3)))
  expect_identical(fit$labels, c("beta", "alpha"))
  expect_identical(fit$trainable, fit$parameters)
  # The folder holds safetensors and no pickles; its config carries the R labels.
  files <- list.files(out, recursive = TRUE)
  expect_true("model.safetensors" %in% files)
  expect_false(any(grepl("\\.(bin|pt|pth|pkl)$", files)))
  config <- jsonlite::read_json(file.path(out, "config.json"))
  expect_identical(unlist(config$id2label), c("0" = "beta", "1" = "alpha"))
  classifier <- pipeline("text-classification", out)
  pred <- classifier(d$eval$text)
  expect_gte(mean(pred$label == as.character(d$eval$label)), 0.9)
  # Printing shows the final metrics; nothing keeps the token.
  shown <- capture.output(print(fit))
  expect_true(any(grepl("eval_accuracy = 1", shown, fixed = TRUE)))
  expect_length(grepRaw(secret, serialize(fit, NULL)), 0L)
  expect_false(any(grepl(secret, shown, fixed = TRUE)))
})

test_that("the same data, model and seed give the losses of a plain Python Trainer run", {
  train_one_thread()
  folders <- train_fixtures()
  d <- toy_data()
  d$train$label <- as.character(d$train$label)   # the reference sorts the classes
  d$eval$label <- as.character(d$eval$label)
  fit <- fine_tune(folders$bert, d$train, d$eval, epochs = 2, learning_rate = 1e-3,
                   batch_size = 8, seed = 7, logging_steps = 1, output_dir = tempfile(),
                   quiet = TRUE)
  ref <- hfbridge:::pybridge_module("fixtures.trainer_reference")
  history <- ref$plain_trainer(folders$bert, as.list(d$train$text), as.list(d$train$label),
                               as.list(d$eval$text), as.list(d$eval$label), tempfile(),
                               epochs = 2, learning_rate = 1e-3, batch_size = 8L, seed = 7L,
                               logging_steps = 1L)
  py_loss <- unlist(lapply(history, function(h) h$loss))
  py_eval <- unlist(lapply(history, function(h) h$eval_loss))
  expect_length(py_loss, 40L)
  expect_equal(fit$metrics$loss[!is.na(fit$metrics$loss)], py_loss, tolerance = 1e-6)
  expect_equal(fit$metrics$eval_loss[!is.na(fit$metrics$eval_loss)], py_eval, tolerance = 1e-6)
  # And the same seed again gives the same metrics.
  again <- fine_tune(folders$bert, d$train, d$eval, epochs = 2, learning_rate = 1e-3,
                     batch_size = 8, seed = 7, logging_steps = 1, output_dir = tempfile(),
                     quiet = TRUE)
  expect_identical(again$metrics, fit$metrics)
})

test_that("bad input is refused with a classed error before any training", {
  folders <- train_fixtures()
  d <- toy_data()$train
  bad <- function(..., train = d, eval = NULL, model = folders$bert) {
    expect_error(fine_tune(model, train, eval, output_dir = tempfile(), quiet = TRUE, ...),
                 class = "hfbridge_error_invalid_argument")
  }
  bad(text = "review")                                       # missing column
  bad(label = "class")
  bad(train = transform(d, text = replace(text, 3, NA)))     # NA texts
  invalid <- "caf\xe9"
  Encoding(invalid) <- "UTF-8"
  err <- tryCatch(fine_tune(folders$bert, transform(d, text = replace(text, 4, invalid)),
                            output_dir = tempfile(), quiet = TRUE), error = identity)
  expect_s3_class(err, "hfbridge_error_invalid_argument")   # invalid UTF-8, with its row
  expect_identical(err$rows, 4L)
  expect_match(conditionMessage(err), "Column \"text\" of `train` is not valid UTF-8 at row 4")
  bad(train = transform(d, label = replace(label, 2, NA)))
  bad(train = transform(d, label = "alpha"))                 # a single class
  bad(train = d[d$label == "alpha", ])
  bad(eval = data.frame(text = "a b c", label = "gamma"))   # a label unseen in train
  bad(epochs = 0)
  bad(learning_rate = -1e-5)
  bad(batch_size = 0)
  bad(batch_size = 2.5)
  bad(learnin_rate_typo = 1)                                 # not a TrainingArguments field
  bad(output_dir_ignored = NULL, resume = TRUE)
  err <- tryCatch(fine_tune(folders$bert, d, num_train_epoch = 2, quiet = TRUE),
                  error = function(e) e)
  expect_match(conditionMessage(err), "num_train_epochs")   # suggests the near name
  # A model without a causal language-model head.
  expect_error(fine_tune(folders$t5, d$text, task = "text-generation", quiet = TRUE),
               class = "hfbridge_error_unsupported")
})

test_that("LoRA trains fewer parameters; the adapter and the merged model both load and agree", {
  train_one_thread()
  folders <- train_fixtures()
  d <- toy_data()
  lora <- list(r = 4, alpha = 8, dropout = 0, target_modules = c("query", "value"))
  adapter <- fine_tune(folders$bert, d$train, d$eval, epochs = 1, learning_rate = 1e-2,
                       lora = lora, output_dir = tempfile(), quiet = TRUE)
  merged <- fine_tune(folders$bert, d$train, d$eval, epochs = 1, learning_rate = 1e-2,
                      lora = c(lora, merge = TRUE), output_dir = tempfile(), quiet = TRUE)
  expect_lt(adapter$trainable, adapter$parameters / 2)
  expect_true(adapter$lora && !adapter$merged && merged$merged)
  expect_identical(adapter$metrics, merged$metrics)
  expect_true(all(c("adapter_model.safetensors", "adapter_config.json")
                  %in% list.files(adapter$output_dir)))
  expect_true("model.safetensors" %in% list.files(merged$output_dir))
  texts <- d$eval$text[1:6]
  a <- pipeline("text-classification", adapter$output_dir)(texts, top_k = 2)
  b <- pipeline("text-classification", merged$output_dir)(texts, top_k = 2)
  expect_identical(a$label, b$label)
  expect_true(all(a$label %in% c("alpha", "beta")))
  expect_equal(a$score, b$score, tolerance = 1e-5)
})

test_that("text generation: a small GPT-2 continued on a character vector", {
  train_one_thread()
  folders <- train_fixtures()
  texts <- rep(c("the robot likes red apples.", "the robot likes green pears."), 20)
  out <- tempfile()
  fit <- fine_tune(folders$gpt2, texts, texts[1:4], task = "text-generation", epochs = 10,
                   learning_rate = 1e-2, batch_size = 8, output_dir = out, quiet = TRUE)
  losses <- fit$metrics$loss[!is.na(fit$metrics$loss)]
  expect_lt(utils::tail(losses, 1), losses[1])
  expect_false("eval_accuracy" %in% names(fit$metrics))
  expect_true(any(!is.na(fit$metrics$eval_loss)))
  generated <- pipeline("text-generation", out)("the robot", max_new_tokens = 3)
  expect_match(generated$generated_text, "^the robot likes")
})

test_that("an interrupt stops training with a checkpoint, and resume = TRUE finishes it", {
  train_fixtures()
  out <- tempfile()
  child <- callr::r_bg(function(out) {
    library(hfbridge)
    hfbridge:::pybridge_module("models")$import_torch()$set_num_threads(1L)
    folder <- hfbridge:::pybridge_module("fixtures.task_models")$ensure(names = list("bert"))
    d <- as.data.frame(hfbridge:::pybridge_module("fixtures.trainer_reference")$
                         toy_classification(160L))
    tryCatch(fine_tune(folder$bert, d, epochs = 40, learning_rate = 1e-3, save_steps = 10,
                       output_dir = out, quiet = TRUE),
             hfbridge_error_interrupted = function(e) list(class = class(e), step = e$step))
  }, args = list(out = out))
  withr::defer(if (child$is_alive()) child$kill())
  first <- file.path(out, "checkpoints", "checkpoint-10")
  deadline <- Sys.time() + 120
  while (!dir.exists(first) && child$is_alive() && Sys.time() < deadline) Sys.sleep(0.1)
  expect_true(dir.exists(first))
  tools::pskill(child$get_pid(), tools::SIGINT)
  child$wait(60000)
  res <- child$get_result()
  expect_true("hfbridge_error_interrupted" %in% res$class)
  expect_gt(res$step, 10L)
  expect_lt(res$step, 400L)                                  # 10 steps an epoch, 40 epochs
  expect_true(dir.exists(file.path(out, "checkpoints", paste0("checkpoint-", res$step))))
  expect_false(file.exists(file.path(out, "model.safetensors")))

  train_one_thread()
  d <- as.data.frame(hfbridge:::pybridge_module("fixtures.trainer_reference")$
                       toy_classification(160L))
  tm <- hfbridge:::pybridge_module("fixtures.task_models")
  fit <- fine_tune(tm$ensure(names = list("bert"))$bert, d, epochs = 40, learning_rate = 1e-3,
                   save_steps = 10, output_dir = out, resume = TRUE, quiet = TRUE)
  expect_identical(max(fit$metrics$step), 400L)
  expect_identical(fit$resumed_from, res$step)              # continued, not restarted
  expect_false(anyDuplicated(fit$metrics$step[!is.na(fit$metrics$loss)]) > 0)
  expect_true(file.exists(file.path(out, "model.safetensors")))
  expect_false(dir.exists(file.path(out, "checkpoints")))
})
