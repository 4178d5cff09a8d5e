# bench/multimodal, speech: pipeline("automatic-speech-recognition") from R against the same
# transformers pipeline in Python (asr_py.py, a separate process) on the same 5 minutes of audio
# (a 16 kHz wav of speech markers), in 30 s chunks, batch_size 4, greedy; medians of ROUNDS runs
# after a warm-up (loading excluded) and the ratio R / Python. Target (issue 24): <= 1.05x.
# Two models: the tests' tiny Whisper (the time is decoding audio, the feature extractor and R's
# overhead) and a random one of whisper-tiny's sizes (4 + 4 layers, 384 dims) with the
# fixture's small vocabulary (the model's share of the time is a real one). One torch thread on
# both sides, as the machine is shared.
# Usage: Rscript bench/multimodal/asr.R ROUNDS [SECONDS]
library(hfbridge)
args <- as.integer(commandArgs(TRUE))
rounds <- args[1]
seconds <- if (length(args) > 1) args[2] else 300L
python <- Sys.getenv("RETICULATE_PYTHON")
wav <- file.path("bench", "data", "asr", sprintf("speech_%ds.wav", seconds))

# A Python started from R inherits R's LD_LIBRARY_PATH, which breaks its imports: unset it.
py_script <- function(...) {
  system2("/usr/bin/env", c("-u", "LD_LIBRARY_PATH", python, "bench/multimodal/asr_py.py", ...),
          stdout = TRUE, stderr = FALSE)
}
invisible(py_script("make", wav, seconds))
invisible(hfbridge:::py_call("models", "set_threads", 1L))
am <- reticulate::import("pybridge.fixtures.audio_models")
tiny <- am$ensure()
warmup <- unlist(am$audio_files(tiny$audio))[["speech.wav"]]
models <- c(tiny = tiny$whisper, whisper_tiny_sized = am$ensure_bench()$bench_whisper)

for (size in names(models)) {
  asr <- pipeline("automatic-speech-recognition", models[[size]], quiet = TRUE)
  run <- function(path) asr(path, chunk_length_s = 30, batch_size = 4, num_beams = 1)
  run(warmup)
  ours <- stats::median(vapply(seq_len(rounds), function(i) system.time(run(wav))[["elapsed"]], 0))
  anchor <- jsonlite::fromJSON(py_script("run", models[[size]], wav, rounds, warmup))$median
  cat(sprintf(paste("result speech recognition %s (%d s of audio): hfbridge %.2f s,",
                    "transformers %.2f s, ratio %.2fx (target <= 1.05x)\n"),
              size, seconds, ours, anchor, ours / anchor))
}
