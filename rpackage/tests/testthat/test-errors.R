# How Python failures reach R: through the exception object, never a message left by another call.

write_raw_safetensors <- function(header_json, data = as.raw(rep(0, 4))) {
  path <- tempfile(fileext = ".safetensors")
  header <- charToRaw(header_json)
  n <- length(header)
  len <- as.raw(c(n %% 256, (n %/% 256) %% 256, rep(0, 6)))
  writeBin(c(len, header, data), path)
  path
}

test_that("an unforeseen Python exception arrives as hfbridge_error_python with its type", {
  int <- reticulate::import_builtins()$int
  err <- expect_error(hfbridge:::call_python(int, "seven"), class = "hfbridge_error_python")
  expect_identical(err$python_type, "ValueError")
  expect_match(conditionMessage(err), "Python raised ValueError: invalid literal")
})

test_that("a NUL byte in a file's dtype gives a classed error whose message R can hold", {
  path <- write_raw_safetensors('{"a":{"dtype":"F32\\u0000","shape":[1],"data_offsets":[0,4]}}')
  err <- expect_error(safe_load_file(path), class = "hfbridge_error_invalid_file")
  expect_match(conditionMessage(err), "F32\\0", fixed = TRUE)
  expect_error(safe_open(path), class = "hfbridge_error_invalid_file")
})

test_that("a failure after a Python error never carries that earlier error's message", {
  expect_error(hub_download("", "config.json"), class = "hfbridge_error_invalid_argument")
  expect_error(safe_load_file(tempfile()), "does not exist", class = "hfbridge_error_invalid_file")
  path <- write_raw_safetensors('{"a\\u0000b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')
  err <- expect_error(safe_load_file(path), class = "hfbridge_error")
  expect_false(grepl("does not exist", conditionMessage(err)))
  expect_match(conditionMessage(err), "NUL")
})

test_that("fields of an error raised on a worker thread reach R", {
  path <- tempfile(fileext = ".safetensors")
  reticulate::py_run_string(sprintf(paste0(
    "import numpy as np, safetensors.numpy\n",
    "safetensors.numpy.save_file({'a': np.zeros(3000000, dtype='int64'), ",
    "'big': np.array([2**53 + 1], dtype='int64')}, '%s')"), path))
  err <- expect_error(safe_load_file(path, int64 = "error"), class = "hfbridge_error_unsupported")
  expect_identical(err$tensor, "big")
})
