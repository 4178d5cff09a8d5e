# Results that cannot fit in memory are refused with hfbridge_error_memory, naming the size they
# need, before R or Python tries to allocate them (issue 27): a padded token matrix of ten
# million texts, and a tensor larger than free memory (in a sparse file: a real header, and a
# hole where its data would be).

test_that("encode_matrix() of ten million texts at max_length = 512 is refused with its size", {
  folder <- hfbridge:::pybridge_module("fixtures.tokenizers")$ensure()$minilm
  tok <- tokenizer_from_file(file.path(folder, "tokenizer.json"))
  tok$no_padding()
  tok$no_truncation()
  texts <- rep("a", 1e7)
  err <- tryCatch(tok$encode_matrix(texts, max_length = 512, padding = "max_length"),
                  error = identity)
  expect_s3_class(err, "hfbridge_error_memory")
  expect_identical(err$cells, 1e7 * 512)
  expect_identical(err$bytes, 1e7 * 512 * 32)
  expect_lt(err$limit, err$bytes)
  expect_identical(err$argument, "max_length")
  expect_match(conditionMessage(err), "5120000000 token cells, which need about 152.6 GiB")
  # In chunks, each of which fits: refused before any chunk runs, since the rows bound together
  # could not fit either.
  err <- tryCatch(tok$encode_matrix(texts, max_length = 512, padding = "max_length",
                                    chunk_size = 1e5), error = identity)
  expect_s3_class(err, "hfbridge_error_memory")
  expect_identical(err$bytes, 1e7 * 512 * 32)
})

# A safetensors file with one F32 tensor "big" of [rows, 2^20]: only its header is written.
sparse_tensor_file <- function(path, rows) {
  nbytes <- rows * 2^20 * 4
  header <- sprintf('{"big":{"dtype":"F32","shape":[%.0f,1048576],"data_offsets":[0,%.0f]}}',
                    rows, nbytes)
  header <- paste0(header, strrep(" ", -nchar(header) %% 8))
  con <- file(path, "wb")
  on.exit(close(con))
  writeBin(c(packBits(intToBits(nchar(header)), "raw"), raw(4), charToRaw(header)), con)
  seek(con, 8 + nchar(header) + nbytes - 1, rw = "write")
  writeBin(as.raw(0), con)
  path
}

test_that("a tensor larger than free memory is refused before it is allocated; a slice reads", {
  free <- hfbridge:::py_call("memory", "available")
  skip_if(is.null(free), "this system does not say how much memory is free")
  rows <- ceiling(2 * free / (8 * 2^20))  # twice free memory as R doubles
  path <- sparse_tensor_file(tempfile(fileext = ".safetensors"), rows)
  on.exit(unlink(path), add = TRUE)
  need <- rows * 2^20 * 8
  for (read in list(function() safe_load_file(path), function() safe_open(path)$get_tensor("big"),
                    function() safe_load_file(path, layout = "reversed"))) {
    err <- tryCatch(read(), error = identity)
    expect_s3_class(err, "hfbridge_error_memory")
    expect_identical(err$bytes, need)
    expect_lt(err$limit, need)
    expect_identical(err$tensor, "big")
    expect_identical(err$path, path)
    expect_match(conditionMessage(err), "Tensor 'big' of .* needs about [0-9.]+ GiB of memory")
  }
  h <- safe_open(path)
  on.exit(h$close(), add = TRUE, after = FALSE)
  expect_identical(h$shape("big"), c(as.integer(rows), 1048576L))
  # Two rows of it still read, as the safetensors library reads them.
  py <- reticulate::import_builtins()
  reference <- reticulate::import("safetensors")$safe_open(path, framework = "numpy")
  want <- reference$get_slice("big")$`__getitem__`(reticulate::tuple(py$slice(0L, 2L),
                                                                     py$slice(0L, 8L)))
  expect_identical(h$get_slice("big", 1:2, 1:8), want)
  err <- tryCatch(h$get_slice("big", seq_len(rows - 1), ), error = identity)
  expect_s3_class(err, "hfbridge_error_memory")
  expect_identical(err$bytes, (rows - 1) * 2^20 * 8)
})
