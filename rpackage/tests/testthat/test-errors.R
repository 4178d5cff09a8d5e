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

test_that("every error names the verb the user called, never its arguments", {
  # A user's functions live under the global environment; testthat's test environment is a
  # child of hfbridge's namespace, so functions defined here directly would count as hfbridge's.
  user <- new.env(parent = globalenv())
  call_of <- evalq(function(expr) conditionCall(tryCatch(expr, hfbridge_error = identity)), user)
  secret <- "hf_VerbCallSecret0123456789"
  # raised in R, by a check several helpers deep
  expect_identical(call_of(hub_download("", "config.json", token = secret)),
                   quote(hub_download()))
  expect_identical(call_of(hf_hub_download("a b", "config.json")), quote(hf_hub_download()))
  expect_identical(call_of(hfbridge::hub_snapshot("x", allow_patterns = NA)),
                   quote(hfbridge::hub_snapshot()))
  # raised in Python and mapped in R
  expect_identical(call_of(safe_load_file(tempfile())), quote(safe_load_file()))
  # a method of a handle
  path <- tempfile(fileext = ".safetensors")
  safe_save_file(list(a = 1:3), path)
  h <- safe_open(path)
  expect_identical(call_of(h$get_tensor("zzz")), quote(h$get_tensor()))
  h$close()
  # inside the user's own function, the hfbridge verb is named, not the user's function
  mine <- evalq(function() safe_load_file(tempfile()), user)
  expect_identical(call_of(mine()), quote(safe_load_file()))
  printed <- tryCatch(hub_download("", "x", token = secret), error = function(e) {
    paste(utils::capture.output(print(e)), collapse = "\n")
  })
  expect_match(printed, "hub_download()", fixed = TRUE)
  expect_false(grepl(secret, printed, fixed = TRUE))
  # a method called on the object a call made: that call's arguments go too
  chained <- tryCatch(hf_chat("x", endpoint = "http://127.0.0.1:9/v1", token = secret,
                              api_key = secret)$chat("hi"), hfbridge_error = identity)
  expect_identical(conditionCall(chained), quote(hf_chat()$chat()))
  expect_length(grepRaw(secret, serialize(chained, NULL), fixed = TRUE), 0L)
})

test_that("text that is not UTF-8 is refused wherever it is given, and messages stay printable", {
  bad <- rawToChar(as.raw(c(0x61, 0xff, 0xfe)))
  invalid <- function(expr) expect_error(expr, class = "hfbridge_error_invalid_argument")
  path <- tempfile(fileext = ".safetensors")
  invalid(safe_save_file(list(a = 1), path, metadata = c(k = bad)))
  invalid(safe_save_file(stats::setNames(list(1), bad), path))
  invalid(hub_snapshot("gpt2", allow_patterns = bad))
  invalid(hf_chat("hfbridge-tiny/chat", system_prompt = bad))
  invalid(hf_chat("x", endpoint = "http://127.0.0.1:9/v1")$chat(bad))
  invalid(hf_inference("text-classification", "fine", endpoint = "http://127.0.0.1:9",
                       model = bad))
  expect_error(hub_download(bad, "config.json"), class = "hfbridge_error_invalid_argument")
  # a message or field that quotes such text shows its bytes, so that R can print it
  err <- tryCatch(hfbridge_abort("invalid_argument", paste("Not a repo:", bad), repo_id = bad),
                  hfbridge_error = identity)
  expect_identical(conditionMessage(err), "Not a repo: a<ff><fe>")
  expect_identical(err$repo_id, "a<ff><fe>")
})

test_that("text marked UTF-8 that is not, from an argument or a variable, never reaches Python", {
  # reticulate 1.28 crashes R converting such a string; Sys.getenv() returns one
  marked <- rawToChar(as.raw(c(0x68, 0x66, 0x5f, 0xfe)))
  Encoding(marked) <- "UTF-8"
  out <- callr::r(function(marked) {
    library(hfbridge)
    class_of <- function(expr) {
      tryCatch({
        force(expr)
        "no error"
      }, error = function(e) class(e)[1])
    }
    c(arg = class_of(hfbridge:::call_python(reticulate::import_builtins()$len, list(a = marked))),
      name = class_of(hfbridge:::call_python(reticulate::import_builtins()$len,
                                            stats::setNames(list(1), marked))),
      token = class_of(hub_whoami(token = marked)),
      env = {
        Sys.setenv(HF_TOKEN = marked)
        class_of(hub_download("gpt2", "config.json"))
      })
  }, list(marked))
  expect_identical(unname(out), rep("hfbridge_error_invalid_argument", 4))
})

test_that("an interrupt that reaches R as another error still stops the job as an interrupt", {
  # reticulate turns Python's KeyboardInterrupt into an R interrupt, unless R's own pending
  # interrupt fires meanwhile, which gives an unrelated error: the job says it was interrupted
  main <- reticulate::py_run_string(paste(
    "import pybridge.jobs as jobs",
    "class Interrupted(jobs.Job):",
    "    total = 10",
    "    def advance(self, units, seconds):",
    "        self.position += 1",
    "        if self.position == 3:",
    "            self.interrupted = True",
    "            raise RuntimeError('No such namespace: reticulate')",
    sep = "\n"))
  job <- main$Interrupted()
  err <- expect_error(
    hfbridge:::job_run(job, "test", quiet = TRUE, units = 1, whole = FALSE,
                       interrupted = function(state) {
                         hfbridge:::hfbridge_abort("interrupted", "stopped", step = state$step)
                       }),
    class = "hfbridge_error_interrupted")
  expect_identical(err$step, 3L)
  expect_true(job$stopped)
})

test_that("odd values where flags, counts or values belong are invalid_argument, not base errors", {
  bytes <- "caf\xc3\xa9"
  Encoding(bytes) <- "bytes"
  invalid <- function(expr) expect_error(expr, class = "hfbridge_error_invalid_argument")
  invalid(hub_download("gpt2", "config.json", quiet = bytes))
  invalid(hub_download("gpt2", "config.json", force_download = strrep("x", 1e6)))
  err <- tryCatch(hub_download("gpt2", strrep("y", 1e5), quiet = 2), error = identity)
  expect_lt(nchar(conditionMessage(err)), 500)
  invalid(hub_load(function(x) x))
  invalid(hub_load(new.env()))
  gpt2 <- hfbridge:::pybridge_module("fixtures.models")$ensure(names = list("gpt2"))$gpt2
  tok <- tokenizer_from_file(file.path(gpt2, "tokenizer.json"))
  invalid(tok$apply_chat_template(list(list(role = "user", content = "hi")), tools = sum))
  invalid(hub_dataset_chunks("imdb", callback = function(chunk) FALSE, chunk_size = 10))
  invalid(hub_dataset_chunks("imdb", callback = function(chunk, i) FALSE, quiet = "yes"))
  invalid(hf_chat("m", endpoint = "http://127.0.0.1:9/v1", timeout = TRUE))
  invalid(hf_chat("m", endpoint = "http://127.0.0.1:9/v1", api_key = list()))
  invalid(hf_chat("m", endpoint = "http://127.0.0.1:9/v1", token = sum))
  invalid(run_example_app(host = c("a", "b")))
  invalid(run_example_app(host = NA))
  invalid(hub_mirror_publish(tempdir(), "a\nb", tempdir()))
  invalid(space_scaffold(file.path(tempdir(), strrep("d", 300))))
  err <- tryCatch(tok$apply_chat_template(new.env()), error = identity)
  expect_s3_class(err, "hfbridge_error_invalid_argument")
  expect_match(conditionMessage(err), "where a value")
  invalid(hfbridge:::call_python(reticulate::import_builtins()$len, list(1, sum)))
})
