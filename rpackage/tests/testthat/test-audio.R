# Speech recognition against transformers itself: the tiny Whisper and the audio files of
# pybridge.fixtures.audio_models are published on the test mirror, and each result is compared
# with transformers' own automatic-speech-recognition pipeline called in Python through
# reticulate on the same folder and the same files or samples.

audio_fixtures <- function() {
  am <- hfbridge:::pybridge_module("fixtures.audio_models")
  folders <- am$ensure()
  publish_repo(am$REPO_IDS$whisper, folders$whisper)
  files <- unlist(am$audio_files(folders$audio))
  list(am = am, folder = folders$whisper, id = am$REPO_IDS$whisper, files = files)
}

local_audio_thread <- function(env = parent.frame()) {
  torch <- hfbridge:::pybridge_module("models")$import_torch()
  before <- torch$get_num_threads()
  torch$set_num_threads(1L)
  withr::defer(torch$set_num_threads(before), envir = env)
}

py_asr <- function(folder) {
  reticulate::import("transformers")$pipeline("automatic-speech-recognition", model = folder,
                                              device = "cpu")
}

# transformers' chunks as a data frame of start, end (NA for None) and text.
py_segments <- function(result) {
  num <- function(x) if (is.null(x)) NA_real_ else x
  data.frame(start = vapply(result$chunks, function(c) num(c$timestamp[[1]]), 0),
             end = vapply(result$chunks, function(c) num(c$timestamp[[2]]), 0),
             text = vapply(result$chunks, function(c) c$text, ""), stringsAsFactors = FALSE)
}

test_that("files of each format and samples give transformers' transcripts", {
  local_hub()
  local_audio_thread()
  fx <- audio_fixtures()
  asr <- pipeline("automatic-speech-recognition", fx$id, quiet = TRUE)
  expect_true("automatic-speech-recognition" %in% pipeline_tasks())
  files <- unname(fx$files[c("speech.wav", "speech.flac", "speech.ogg", "speech.m4a",
                             "long.wav")])
  quiet <- numeric(3 * 16000)
  res <- asr(c(as.list(files), list(quiet)), sampling_rate = 16000)
  expect_s3_class(res, "data.frame")
  expect_named(res, c("audio_id", "file", "text"))
  expect_identical(res$audio_id, 1:6)
  expect_identical(res$file, c(files, NA))
  ref <- py_asr(fx$folder)
  want <- vapply(files, function(f) ref(f)$text, "", USE.NAMES = FALSE)
  want <- c(want, ref(reticulate::np_array(quiet, dtype = "float32"))$text)
  expect_identical(res$text, want)
  expect_false(identical(res$text[1], res$text[5]))
  expect_identical(asr(files[1])$text, want[1])  # one path, as a string
})

test_that("return_timestamps gives audio.whisper's segments with transformers' times", {
  local_hub()
  local_audio_thread()
  fx <- audio_fixtures()
  asr <- pipeline("automatic-speech-recognition", fx$id)
  long <- unname(fx$files["long.wav"])
  res <- asr(long, return_timestamps = TRUE, quiet = TRUE)
  expect_named(res, c("audio_id", "file", "segment", "from", "to", "start", "end", "text"))
  want <- py_segments(py_asr(fx$folder)(long, return_timestamps = TRUE))
  expect_gt(nrow(want), 1L)  # several segments (how many is the tiny model's own matter)
  expect_identical(res$segment, seq_len(nrow(want)))
  expect_identical(res$text, want$text)
  expect_identical(res$start, want$start)
  expect_identical(res$end, want$end)
  expect_true(anyNA(res$end))  # Whisper left the last segment open
  expect_identical(is.na(res$to), is.na(res$end))
  ok <- !is.na(res$start)
  secs <- vapply(strsplit(res$from[ok], ":", fixed = TRUE), function(p) {
    sum(as.numeric(p) * c(3600, 60, 1))
  }, 0)
  expect_equal(secs, res$start[ok], tolerance = 1e-9)
  expect_match(res$from[ok], "^[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}$")
  chunked <- asr(long, return_timestamps = TRUE, chunk_length_s = 30, batch_size = 2,
                 quiet = TRUE)
  want <- py_segments(py_asr(fx$folder)(long, return_timestamps = TRUE, chunk_length_s = 30L,
                                        batch_size = 2L, ignore_warning = TRUE))
  expect_identical(chunked$text, want$text)
  expect_identical(chunked$start, want$start)
})

test_that("samples at another rate are resampled as ffmpeg resamples a file at that rate", {
  local_hub()
  local_audio_thread()
  fx <- audio_fixtures()
  asr <- pipeline("automatic-speech-recognition", fx$id, quiet = TRUE)
  x <- 0.4 * sin(2 * pi * 220 * seq(0, 4, by = 1 / 8000)) * (seq(0, 4, by = 1 / 8000) %% 1 < 0.6)
  raw <- tempfile(fileext = ".f32")
  wav <- tempfile(fileext = ".wav")
  writeBin(x, raw, size = 4, endian = "little")
  system2("ffmpeg", c("-loglevel", "error", "-f", "f32le", "-ar", "8000", "-ac", "1", "-i",
                      shQuote(raw), "-c:a", "pcm_f32le", shQuote(wav)))
  res <- asr(x, sampling_rate = 8000L, return_timestamps = TRUE)
  want <- py_segments(py_asr(fx$folder)(wav, return_timestamps = TRUE))
  expect_identical(res$text, want$text)
  expect_identical(res$end, want$end)
  expect_true(all(is.na(res$file)))
})

test_that("bad input is a classed error: files, text, samples, rates, ffmpeg, models", {
  local_hub()
  local_audio_thread()
  fx <- audio_fixtures()
  asr <- pipeline("automatic-speech-recognition", fx$id, quiet = TRUE)
  err <- expect_error(asr(c(fx$files[["speech.wav"]], "gone.wav")),
                      class = "hfbridge_error_invalid_argument")
  expect_identical(err$path, "gone.wav")
  expect_identical(err$position, 2L)
  expect_error(asr("Please transcribe this sentence"), "is text, not audio",
               class = "hfbridge_error_invalid_argument")
  notes <- tempfile(fileext = ".wav")
  writeLines("not audio", notes)
  err <- expect_error(asr(notes), class = "hfbridge_error_invalid_file")
  expect_identical(err$path, notes)
  x <- numeric(16000)
  expect_error(asr(x), "sampling_rate", class = "hfbridge_error_invalid_argument")
  err <- expect_error(asr(x, sampling_rate = 44.1), class = "hfbridge_error_invalid_argument")
  expect_identical(err$argument, "sampling_rate")
  expect_error(asr(x + 2, sampling_rate = 16000), "within -1 to 1",
               class = "hfbridge_error_invalid_argument")
  expect_error(asr(list(x, TRUE), sampling_rate = 16000), "inputs\\[\\[2\\]\\]",
               class = "hfbridge_error_invalid_argument")
  expect_error(asr(fx$files[["speech.wav"]], sampling_rate = 16000), "carry their own",
               class = "hfbridge_error_invalid_argument")
  expect_error(pipeline("text-classification", fx$id), "speech model",
               class = "hfbridge_error_unsupported")

  os <- reticulate::import("os")
  path <- os$environ$get("PATH")
  withr::defer(os$environ$update(list(PATH = path)))
  os$environ$update(list(PATH = tempdir()))  # as if ffmpeg were not installed
  err <- expect_error(asr(fx$files[["speech.ogg"]]), "apt-get install ffmpeg",
                      class = "hfbridge_error_system_dependency")
  expect_identical(err$program, "ffmpeg")
  expect_s3_class(asr(x, sampling_rate = 16000), "data.frame")  # samples need no ffmpeg
})
