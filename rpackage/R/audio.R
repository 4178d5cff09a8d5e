# Speech to text: pipeline("automatic-speech-recognition") takes audio files or samples; R
# checks their shape, pybridge.audio decodes them with ffmpeg and runs transformers' pipeline,
# and R builds the data frame (audio.whisper's segment, from and to beside start and end).

#' @name pipeline
#' @rdname pipeline
#' @section Speech recognition:
#' `pipeline("automatic-speech-recognition", model)` (a Whisper model such as
#' `"openai/whisper-tiny"`, or a CTC model such as wav2vec2) transcribes audio. Its inputs are
#' audio file paths (wav, mp3, flac, ogg, m4a, and whatever else ffmpeg reads), or samples: a
#' numeric vector in \[-1, 1\] (one channel; 16-bit integer samples divided by 32768) with
#' `sampling_rate =` in Hz, or a list of such vectors (and paths) with one rate, or one rate per
#' vector. Files are decoded by ffmpeg, which must be installed (Debian and Ubuntu:
#' `apt-get install ffmpeg`), to one channel at the model's rate; samples at another rate go
#' through the same resampler.
#'
#' * columns: `audio_id` (the input's position), `file` (the path as given, `NA` for
#'   samples), `text`
#' * with `return_timestamps = TRUE`, one row per segment, as audio.whisper's `$data`:
#'   `audio_id`, `file`, `segment` (1, 2, ... within an input), `from` and `to`
#'   (`"HH:MM:SS.mmm"`), `start` and `end` (seconds, `NA` where the model predicted none, as
#'   Whisper may for the last segment), `text`; `return_timestamps = "word"` gives one row per
#'   word
#' * arguments: `sampling_rate`, `return_timestamps`, `chunk_length_s`, `stride_length_s`,
#'   `language` (e.g. `"en"`; `NULL` detects it), `task` (`"transcribe"` or `"translate"` to
#'   English, given to the pipeline function, as `pipeline()` has its own `task`),
#'   `return_language` (adds a `language` column), `seed`, `batch_size`, and `generate()`
#'   settings but `num_return_sequences` (Whisper's pipeline searches 5 beams unless the model
#'   or `num_beams` says otherwise)
#'
#' Long audio runs as in transformers: Whisper transcribes audio longer than its 30 s window
#' with its own sequential long-form algorithm; `chunk_length_s = 30` instead cuts it into
#' chunks overlapping by `stride_length_s` (`chunk_length_s / 6` by default) that run in
#' batches of `batch_size` and are joined. A progress bar moves once per input; with
#' `parallel = TRUE` or `chunk_size`, files (not samples) run on the future plan's workers. Unlike
#' transformers, which pipes a file's bytes into ffmpeg, hfbridge gives ffmpeg the file's path:
#' so m4a files with their index at the end (ffmpeg's own and many recorders') decode, and mp3
#' files lose their encoder padding, as gapless players drop it.
#'
#' A missing file, a folder, text, or samples that are not finite numbers within -1 to 1 signal
#' `hfbridge_error_invalid_argument` (fields `path`, `position`), as do samples without
#' `sampling_rate`, a rate that is not a whole number of Hz from 1000 to 768000 (16 or 44.1
#' are refused: that is kHz), and `sampling_rate` given with files only. A file ffmpeg cannot
#' decode signals `hfbridge_error_invalid_file`; a missing ffmpeg
#' `hfbridge_error_system_dependency` (field `program`); a model that cannot transcribe
#' `hfbridge_error_unsupported`.
NULL

audio_kind <- function(spec) identical(spec$kind, "automatic-speech-recognition")

# The inputs as a list of paths (strings) and samples (numeric arrays): a character vector, one
# numeric vector, or a list of strings and numeric vectors. pybridge.audio checks the files,
# samples and rates.
audio_inputs <- function(inputs) {
  if (is.factor(inputs)) inputs <- as.character(inputs)
  if (is.character(inputs)) return(as.list(check_texts(inputs, "inputs")))
  if (is.numeric(inputs) && !is.object(inputs)) return(list(audio_samples(inputs)))
  if (!is.list(inputs) || is.object(inputs) || length(inputs) == 0L) {
    hfbridge_abort("invalid_argument", sprintf(paste0(
      "`inputs` must be audio file paths, a numeric vector of samples, or a list of them, ",
      "not %s."), describe_value(inputs)), argument = "inputs")
  }
  lapply(seq_along(inputs), function(i) {
    x <- inputs[[i]]
    if (is.character(x) && length(x) == 1L && !is.na(x)) return(enc2utf8(x))
    if (is.numeric(x) && !is.object(x)) return(audio_samples(x))
    hfbridge_abort("invalid_argument", sprintf(paste0(
      "`inputs[[%d]]` must be one file path or a numeric vector of samples, not %s."), i,
      describe_value(x)), argument = "inputs", position = i)
  })
}

# A numeric array: converted to numpy without a copy (a plain vector would go element by element).
audio_samples <- function(x) {
  if (is.integer(x)) storage.mode(x) <- "double"
  as.array(x)
}

# pybridge.audio's columns as a data frame: NA for samples' file, unknown times and languages;
# from and to as audio.whisper writes them.
audio_frame <- function(res) {
  out <- pipeline_frame(res)
  out$file[!nzchar(out$file)] <- NA_character_
  if (!is.null(out$language)) out$language[!nzchar(out$language)] <- NA_character_
  if (is.null(out$start)) return(out)
  out$start[is.nan(out$start)] <- NA_real_
  out$end[is.nan(out$end)] <- NA_real_
  out$from <- audio_clock(out$start)
  out$to <- audio_clock(out$end)
  first <- c("audio_id", "file", "segment", "from", "to", "start", "end", "text")
  out[c(first, setdiff(names(out), first))]
}

# Seconds as "HH:MM:SS.mmm".
audio_clock <- function(seconds) {
  ms <- round(seconds * 1000)
  out <- sprintf("%02d:%02d:%02d.%03d", ms %/% 3600000, (ms %/% 60000) %% 60,
                 (ms %/% 1000) %% 60, ms %% 1000)
  out[is.na(seconds)] <- NA_character_
  out
}
