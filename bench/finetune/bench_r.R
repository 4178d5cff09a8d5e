# The R side of bench/finetune: fine_tune() on the same data; prints `result r SECONDS`.
library(hfbridge)
n_train <- 800L
n_eval <- 200L
py <- function(name) hfbridge:::pybridge_module(name)
folder <- py("fixtures.task_models")$ensure(names = list("bert"))$bert
data <- as.data.frame(py("fixtures.trainer_reference")$toy_classification(n_train + n_eval))
train <- data[seq_len(n_train), ]
held_out <- data[n_train + seq_len(n_eval), ]
run <- function(train, held_out, epochs) {
  fine_tune(folder, train, held_out, epochs = epochs, learning_rate = 1e-3, batch_size = 16,
            seed = 42, output_dir = tempfile())
}
invisible(run(train[1:32, ], held_out[1:16, ], 1))   # warm-up: imports, first calls
seconds <- system.time(fit <- run(train, held_out, 2))[["elapsed"]]
threads <- py("models")$import_torch()$get_num_threads()
cat(sprintf("result r %.3f steps=%d threads=%d\n", seconds, max(fit$metrics$step), threads))
