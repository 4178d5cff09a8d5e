# Safetensors from R, compared with Python's safetensors (and torch for bfloat16 and float8) on
# the same files.

st_py <- function() {
  if (is.null(.st_test$py)) {
    hfbridge:::start_python()
    .st_test$py <- reticulate::py_run_string("
import json, pickle, struct
import numpy as np
import safetensors, safetensors.numpy

ST_RNG = np.random.default_rng(3)
ST_SHAPES = [(), (0,), (0, 3), (5,), (3, 4), (2, 3, 5), (2, 1, 3, 4)]
ST_DTYPES = ['float64', 'float32', 'float16', 'int64', 'uint64', 'int32', 'uint32', 'int16',
             'uint16', 'int8', 'uint8', 'bool', 'complex64']

def st_values(dtype, shape):
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) if shape else 1
    if dtype == np.bool_:
        x = ST_RNG.random(n) > 0.5
    elif dtype.kind in 'iu':
        info = np.iinfo(dtype)
        x = ST_RNG.integers(max(info.min, -2**40), min(info.max, 2**40), size=n, endpoint=True)
    elif dtype.kind == 'c':
        x = ST_RNG.standard_normal(n) + 1j * ST_RNG.standard_normal(n)
    else:
        x = ST_RNG.standard_normal(n) * 10
        if n >= 3:
            x[:3] = [np.nan, np.inf, -np.inf]
    return np.asarray(x).astype(dtype).reshape(shape)

def st_write_every_dtype(folder):
    paths = {}
    for dt in ST_DTYPES:
        tensors = {f't{i}': st_values(dt, s) for i, s in enumerate(ST_SHAPES)}
        paths[dt] = f'{folder}/{dt}.safetensors'
        safetensors.numpy.save_file(tensors, paths[dt], metadata={'dtype': dt})
    return paths

def st_torch_file(path, dtype):
    import torch
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(0)
    tensors = {f't{i}': (torch.randn(s, generator=g, dtype=torch.float64) * 3)
                        .to(getattr(torch, dtype))
               for i, s in enumerate(ST_SHAPES)}
    save_file(tensors, path)
    return {k: {'shape': list(v.shape), 'value': v.to(torch.float64).numpy()}
            for k, v in tensors.items()}

def st_ref(path):
    return {k: {'shape': [int(d) for d in v.shape], 'value': v}
            for k, v in safetensors.numpy.load_file(path).items()}

def st_item(arr, index):
    return arr[tuple(int(i) for i in index)].item()

def st_with_header(path, header, nbytes):
    h = json.dumps(header).encode()
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + bytes(int(nbytes)))
    return path

def st_pickle(path):
    with open(path, 'wb') as f:
        pickle.dump({'weight': [1.0, 2.0]}, f)
    return path
", convert = TRUE)
  }
  .st_test$py
}
.st_test <- new.env(parent = emptyenv())

np_load <- function(path) reticulate::import("safetensors.numpy")$load_file(path)

st_expect_class <- function(expr, class) {
  err <- tryCatch(expr, error = function(e) e)
  expect_s3_class(err, class)
  invisible(err)
}

test_that("safe_load_file equals Python's safetensors for every numpy dtype and 0 to 4 dims", {
  py <- st_py()
  paths <- py$st_write_every_dtype(withr::local_tempdir())
  r_type <- c(float64 = "double", float32 = "double", float16 = "double", int64 = "double",
              uint64 = "double", int32 = "integer", uint32 = "double", int16 = "integer",
              uint16 = "integer", int8 = "integer", uint8 = "integer", bool = "logical",
              complex64 = "complex")
  for (dt in names(paths)) {
    w <- safe_load_file(paths[[dt]])
    ref <- py$st_ref(paths[[dt]])
    expect_setequal(names(w), names(ref))
    expect_identical(attr(w, "metadata"), c(dtype = dt))
    for (name in names(ref)) {
      x <- w[[name]]
      want <- ref[[name]]$value
      shape <- as.integer(unlist(ref[[name]]$shape))
      expect_identical(typeof(x), r_type[[dt]], label = paste(dt, name))
      if (length(shape)) {
        expect_identical(dim(x), shape, label = paste(dt, name))
      } else {
        expect_null(dim(x))
        expect_length(x, 1)
      }
      storage.mode(want) <- typeof(x)
      expect_identical(as.vector(x), as.vector(want), label = paste(dt, name))
    }
  }
})

test_that("x[i, j, k, l] in R is t[i - 1, j - 1, k - 1, l - 1] in Python", {
  py <- st_py()
  path <- withr::local_tempfile(fileext = ".safetensors")
  reticulate::py_run_string(sprintf(paste0(
    "st_t = st_values('float32', (2, 3, 4, 5))\n",
    "safetensors.numpy.save_file({'t4': st_t, 't2': st_t[0, 1].copy()}, '%s')"), path))
  t_py <- reticulate::py_eval("st_t", convert = FALSE)
  w <- safe_load_file(path)
  x <- w$t4
  expect_identical(dim(x), c(2L, 3L, 4L, 5L))
  for (i in 1:2) for (j in 1:3) for (k in 1:4) for (l in 1:5) {
    expect_identical(x[i, j, k, l], py$st_item(t_py, c(i, j, k, l) - 1L))
  }
  expect_identical(dim(w$t2), c(4L, 5L))
  expect_identical(w$t2, x[1, 2, , ])
})

test_that("bfloat16, float16 and float8 files written by torch read as torch converts them", {
  py <- st_py()
  for (dt in c("bfloat16", "float16", "float8_e4m3fn", "float8_e5m2")) {
    path <- withr::local_tempfile(fileext = ".safetensors")
    want <- py$st_torch_file(path, dt)
    w <- safe_load_file(path)
    for (name in names(want)) {
      expect_identical(as.vector(w[[name]]), as.vector(want[[name]]$value), label = paste(dt, name))
      shape <- as.integer(unlist(want[[name]]$shape))
      expect_identical(dim(w[[name]]), if (length(shape)) shape, label = paste(dt, name))
    }
  }
})

test_that("tensors = picks tensors; unknown names are classed errors", {
  py <- st_py()
  path <- py$st_write_every_dtype(withr::local_tempdir())[["float32"]]
  w <- safe_load_file(path, tensors = c("t4", "t1"))
  expect_named(w, c("t4", "t1"))
  err <- st_expect_class(safe_load_file(path, tensors = "nope"), "hfbridge_error_invalid_argument")
  expect_identical(err$tensor, "nope")
  expect_identical(safe_load_file(path, framework = "torch", device = "cpu")$t4, w$t4)
  st_expect_class(safe_load_file(path, framework = "tf"), "hfbridge_error_invalid_argument")
  st_expect_class(safe_load_file(path, device = "cuda"), "hfbridge_error_unsupported")
  st_expect_class(safe_load_file(path, typo = 1), "hfbridge_error_invalid_argument")
})

test_that("safe_open is lazy: one tensor is read when asked, slices read only their part", {
  path <- withr::local_tempfile(fileext = ".safetensors")
  a <- array(as.numeric(1:60), c(3, 4, 5))
  b <- matrix(1:6, 2, 3)
  safe_save_file(list(a = a, b = b, s = 2.5), path, metadata = c(format = "pt"))
  h <- safe_open(path)
  expect_s3_class(h, "hfbridge_safetensors")
  expect_identical(h$keys(), c("a", "b", "s"))
  expect_identical(h$shape("a"), c(3L, 4L, 5L))
  expect_identical(h$dtype("b"), "I32")
  expect_identical(h$metadata, c(format = "pt"))
  # Overwrite b's bytes in the file after opening: the handle had not read them.
  py <- reticulate::import("pybridge.safetensors")
  info <- py$open_file(path)$tensor_info("b")
  con <- file(path, "r+b")
  seek(con, info$start, rw = "write")
  writeBin(as.integer(c(10, 20, 30, 40, 50, 60)), con, size = 4, endian = "little")
  close(con)
  expect_identical(h$get_tensor("a"), a)
  expect_identical(h$get_tensor("b"), matrix(c(10L, 20L, 30L, 40L, 50L, 60L), 2, 3, byrow = TRUE))
  expect_identical(h$get_tensor("s"), array(2.5, 1L))
  expect_identical(h$get_slice("a", 2:3, c(4, 1), NULL), a[2:3, c(4, 1), , drop = FALSE])
  expect_identical(h$get_slice("a", 2, , 5), a[2, , 5, drop = FALSE])
  expect_identical(h$get_slice("a", 2, , 5, drop = TRUE), a[2, , 5])
  expect_identical(h$get_slice("a", c(TRUE, FALSE, TRUE), NULL, 1:2),
                   a[c(1, 3), , 1:2, drop = FALSE])
  st_expect_class(h$get_slice("a", 4, NULL, NULL), "hfbridge_error_invalid_argument")
  st_expect_class(h$get_slice("a", 1, NULL), "hfbridge_error_invalid_argument")
  st_expect_class(h$get_tensor("zzz"), "hfbridge_error_invalid_argument")
  out <- capture.output(print(h))
  expect_match(out[1], "3 tensors")
  expect_true(any(grepl("^  a +3 x 4 x 5 +F64 +480 B$", out)))
  expect_true(any(grepl("^  b +2 x 3 +I32 +24 B$", out)))
  expect_true(any(grepl("metadata: format = pt", out, fixed = TRUE)))
  h$close()
  expect_match(capture.output(print(h))[1], "(closed)", fixed = TRUE)
  st_expect_class(h$get_tensor("a"), "hfbridge_error_invalid_argument")
})

test_that("invalid files are hfbridge_error_invalid_file, never a crash", {
  py <- st_py()
  dir <- withr::local_tempdir()
  good <- file.path(dir, "good.safetensors")
  safe_save_file(list(a = matrix(1, 2, 3), b = 1:4), good)
  bytes <- readBin(good, "raw", file.size(good))
  n <- readBin(bytes[1:8], "integer", size = 4, endian = "little")
  write_raw <- function(name, raw) {
    p <- file.path(dir, name)
    writeBin(raw, p)
    p
  }
  a <- list(dtype = "F32", shape = list(2L, 3L), data_offsets = list(0L, 24L))
  bad <- c(
    missing = file.path(dir, "missing.safetensors"),
    empty = write_raw("empty", raw(0)),
    truncated = write_raw("truncated", bytes[seq_len(length(bytes) - 3)]),
    header_too_long = write_raw("long", c(writeBin(as.integer(c(length(bytes), 0)), raw(),
                                                   size = 4), bytes[-(1:8)])),
    invalid_json = write_raw("json", c(bytes[1:8], charToRaw("{\"a\";"), bytes[-(1:13)])),
    overlap = py$st_with_header(file.path(dir, "overlap"), list(
      a = a, b = list(dtype = "F32", shape = list(2L), data_offsets = list(16L, 24L))), 24),
    out_of_range = py$st_with_header(file.path(dir, "range"), list(
      a = list(dtype = "F32", shape = list(2L, 3L), data_offsets = list(0L, 2400L))), 24),
    unknown_dtype = py$st_with_header(file.path(dir, "dtype"), list(
      a = list(dtype = "F128", shape = list(2L, 3L), data_offsets = list(0L, 24L))), 24),
    pickle = py$st_pickle(file.path(dir, "pytorch_model.bin")),
    folder = dir
  )
  expect_gt(n, 0)
  for (kind in names(bad)) {
    err <- st_expect_class(safe_load_file(bad[[kind]]), "hfbridge_error_invalid_file")
    expect_identical(err$path, bad[[kind]], label = kind)
    st_expect_class(safe_open(bad[[kind]]), "hfbridge_error_invalid_file")
  }
  for (kind in setdiff(names(bad), c("missing", "folder"))) {
    raw <- readBin(bad[[kind]], "raw", max(1, file.size(bad[[kind]])))
    st_expect_class(safe_deserialize(raw), "hfbridge_error_invalid_file")
  }
})

test_that("a file rewritten in place under a handle, or a pipe, is invalid_file, not a crash", {
  dir <- withr::local_tempdir()
  path <- file.path(dir, "m.safetensors")
  safe_save_file(list(w = matrix(as.numeric(1:60000), 300)), path)
  h <- safe_open(path)
  small <- file.path(dir, "small.safetensors")
  safe_save_file(list(w = 1), small)
  file.copy(small, path, overwrite = TRUE)  # the same file, shorter: its map ends early
  err <- st_expect_class(h$get_tensor("w"), "hfbridge_error_invalid_file")
  expect_match(conditionMessage(err), "changed on disk")
  expect_equal(safe_open(path)$get_tensor("w"), array(1, 1L))  # opened again: the new file
  safe_save_file(list(w = 2), small)
  renamed <- safe_open(small)
  safe_save_file(list(w = 3), small)  # written anew and renamed: the handle keeps the old file
  expect_equal(renamed$get_tensor("w"), array(2, 1L))
  fifo <- file.path(dir, "pipe.safetensors")
  skip_if_not(system2("mkfifo", fifo) == 0, "mkfifo is not available")
  st_expect_class(safe_load_file(fifo), "hfbridge_error_invalid_file")
  st_expect_class(safe_open(fifo), "hfbridge_error_invalid_file")
})

test_that("a NUL byte in a tensor name or metadata is unsupported, named, never a bare error", {
  st_py()
  dir <- withr::local_tempdir()
  nul_name <- file.path(dir, "nul-name.safetensors")
  nul_meta <- file.path(dir, "nul-meta.safetensors")
  reticulate::py_run_string(sprintf(paste0(  # Python's safetensors writes and reads both
    "safetensors.numpy.save_file({'ok': np.ones(2), 'we\\x00ight': np.zeros(3)}, r'%s')\n",
    "assert len(safetensors.numpy.load_file(r'%s')) == 2\n",
    "safetensors.numpy.save_file({'a': np.ones(2)}, r'%s', metadata={'note': 'a\\x00b'})"),
    nul_name, nul_name, nul_meta))
  for (path in c(nul_name, nul_meta)) {
    raw <- readBin(path, "raw", file.size(path))
    for (err in list(st_expect_class(safe_load_file(path), "hfbridge_error_unsupported"),
                     st_expect_class(safe_open(path), "hfbridge_error_unsupported"),
                     st_expect_class(safe_deserialize(raw), "hfbridge_error_unsupported"))) {
      expect_match(conditionMessage(err), "NUL byte", fixed = TRUE)
      expect_match(conditionMessage(err), "R strings cannot hold NUL", fixed = TRUE)
    }
  }
  err <- st_expect_class(safe_load_file(nul_name), "hfbridge_error_unsupported")
  expect_identical(err$tensor, "we\\0ight")
  expect_match(conditionMessage(err), "tensor 'we\\0ight'", fixed = TRUE)
  expect_match(conditionMessage(st_expect_class(safe_open(nul_meta),
                                                "hfbridge_error_unsupported")),
               "metadata entry 'note' whose value", fixed = TRUE)
})

test_that("int64 beyond 2^53 warns with a class, or refuses with int64 = 'error'", {
  st_py()
  path <- withr::local_tempfile(fileext = ".safetensors")
  reticulate::py_run_string(sprintf(paste0(
    "safetensors.numpy.save_file({'ok': np.array([2**53, -2**53], dtype='int64'), ",
    "'big': np.array([2**53 + 1], dtype='int64')}, '%s')"), path))
  expect_warning(w <- safe_load_file(path), class = "hfbridge_warning_precision_loss")
  expect_identical(as.vector(w$ok), c(2^53, -2^53))
  expect_identical(as.vector(w$big), 2^53)  # 2^53 + 1 rounds to even
  err <- st_expect_class(safe_load_file(path, int64 = "error"), "hfbridge_error_unsupported")
  expect_identical(err$tensor, "big")
  expect_identical(as.vector(safe_load_file(path, "ok", int64 = "error")$ok), c(2^53, -2^53))
})

test_that("safe_save_file writes what Python's safetensors reads with the same shapes and values", {
  path <- withr::local_tempfile(fileext = ".safetensors")
  x <- list(
    m = matrix(c(1.5, NaN, Inf, -Inf, 0, -2), 2, 3), a4 = array(rnorm(120), c(2, 3, 4, 5)),
    v = c(1, 2, 3), i = array(-3:8, c(3, 4)), l = matrix(c(TRUE, FALSE, TRUE, TRUE), 2),
    s = 7, e = array(numeric(0), c(0, 3)), na = c(NA_real_, 1)
  )
  expect_identical(safe_save_file(x, path, metadata = c(format = "pt", who = "R")), path)
  ref <- np_load(path)
  f <- reticulate::import("safetensors")$safe_open(path, "numpy")
  meta <- f$metadata()  # a map: its order is not kept
  expect_identical(meta[order(names(meta))], list(format = "pt", who = "R"))
  dtypes <- vapply(f$keys(), function(k) f$get_slice(k)$get_dtype(), "")
  expect_identical(dtypes[sort(names(x))],
                   c(a4 = "F64", e = "F64", i = "I32", l = "BOOL", m = "F64", na = "F64", s = "F64",
                     v = "F64"))
  for (name in names(x)) {
    want <- x[[name]]
    got <- ref[[name]]
    expect_identical(as.integer(dim(got)), if (is.null(dim(want))) length(want) else dim(want))
    expect_identical(as.vector(got), as.vector(want), label = name)
  }
  back <- safe_load_file(path)
  expect_identical(back$m, x$m)
  expect_identical(back$a4, x$a4)
  expect_identical(back$i, x$i)
  expect_identical(back$l, x$l)
  expect_identical(back$v, array(x$v))
  expect_true(is.na(back$na[1]))
})

test_that("dtype picks float32, float16, bfloat16 and integer widths, globally or per tensor", {
  path <- withr::local_tempfile(fileext = ".safetensors")
  x <- list(d = matrix(c(1.1, 2.2, 3.3, 70000), 2), h = c(0.1, 65504), b = c(1.00390625, -3.3),
            i = 1:3, j = c(-5L, 120L), u = c(0L, 255L), k = c(2^40, -7))
  safe_save_file(x, path, dtype = list(h = "float16", b = "bfloat16", j = "int8", u = "uint8",
                                       k = "int64", i = "int16"))
  f <- reticulate::import("safetensors")$safe_open(path, "numpy")
  dtypes <- vapply(names(x), function(k) f$get_slice(k)$get_dtype(), "")
  expect_identical(dtypes, c(d = "F64", h = "F16", b = "BF16", i = "I16", j = "I8", u = "U8",
                             k = "I64"))
  back <- safe_load_file(path)
  expect_identical(as.vector(back$h), c(0.0999755859375, 65504))
  expect_identical(as.vector(back$b), c(1, -3.296875))  # 1 + 2^-8 is a tie: to even
  expect_identical(as.vector(back$j), c(-5L, 120L))
  expect_identical(as.vector(back$k), c(2^40, -7))
  safe_save_file(x, path, dtype = "float32")
  f <- reticulate::import("safetensors")$safe_open(path, "numpy")
  dtypes <- vapply(names(x), function(k) f$get_slice(k)$get_dtype(), "")
  expect_identical(unname(dtypes), c("F32", "F32", "F32", "I32", "I32", "I32", "F32"))
  expect_identical(as.vector(safe_load_file(path)$d), as.vector(c(1.1, 2.2, 3.3, 70000)) +
                     c(2.384185791015625e-08, 4.76837158203125e-08, -4.76837158203125e-08, 0))
})

test_that("bad arguments to safe_save_file are invalid_argument, and the old file stays", {
  dir <- withr::local_tempdir()
  path <- file.path(dir, "w.safetensors")
  safe_save_file(list(x = 1:3), path)
  before <- readBin(path, "raw", 1000)
  bad <- list(
    unnamed = list(list(1, 2)), partly_named = list(list(a = 1, 2)),
    duplicated = list(list(a = 1, a = 2)), character = list(list(a = "x")),
    factor = list(list(a = factor("x"))), nested = list(list(a = list(1))),
    null = list(list(a = NULL)), na_int = list(list(a = c(1L, NA))),
    na_lgl = list(list(a = c(TRUE, NA))), not_a_list = list(1:3),
    bad_dtype = list(list(a = 1), dtype = "float128"),
    dtype_unknown_tensor = list(list(a = 1), dtype = c(b = "float32")),
    dtype_range = list(list(a = 300L), dtype = c(a = "int8")),
    dtype_not_whole = list(list(a = 1.5), dtype = c(a = "int32")),
    bad_metadata = list(list(a = 1), metadata = list(a = 1)),
    unnamed_metadata = list(list(a = 1), metadata = "x")
  )
  for (kind in names(bad)) {
    args <- c(bad[[kind]][1], list(path = path), bad[[kind]][-1])
    st_expect_class(do.call(safe_save_file, args), "hfbridge_error_invalid_argument")
  }
  expect_identical(readBin(path, "raw", 1000), before)
  expect_identical(list.files(dir, all.files = TRUE, no.. = TRUE), "w.safetensors")
  st_expect_class(safe_save_file(list(a = 1), file.path(dir, "no", "such.safetensors")),
                  "hfbridge_error_invalid_argument")
  pipe <- file.path(dir, "pipe")
  system2("mkfifo", pipe)
  st_expect_class(safe_save_file(list(a = 1), pipe), "hfbridge_error_invalid_argument")
  expect_identical(system2("test", c("-p", shQuote(pipe))), 0L)  # still a pipe, not replaced
  expect_identical(sort(list.files(dir, all.files = TRUE, no.. = TRUE)),
                   c("pipe", "w.safetensors"))
})

test_that("R -> file -> Python -> file -> R gives identical values", {
  dir <- withr::local_tempdir()
  x <- list(a = array(rnorm(24), c(2, 3, 4)), i = matrix(1:6, 3), l = c(TRUE, FALSE),
            f = matrix(c(0.5, -1.25, 3, 4), 2))
  safe_save_file(x, file.path(dir, "r.safetensors"), dtype = c(f = "float32"))
  st <- reticulate::import("safetensors.numpy", convert = FALSE)
  st$save_file(st$load_file(file.path(dir, "r.safetensors")), file.path(dir, "py.safetensors"),
               metadata = reticulate::dict(from = "python"))
  back <- safe_load_file(file.path(dir, "py.safetensors"))
  expect_identical(attr(back, "metadata"), c(from = "python"))
  expect_identical(back[names(x)][c("a", "i", "f")], x[c("a", "i", "f")])
  expect_identical(back$l, array(x$l))
})

test_that("safe_serialize and safe_deserialize round trip through raw vectors", {
  x <- list(x = array(1:6, c(2, 3)), y = matrix(rnorm(4), 2))
  bytes <- safe_serialize(x, metadata = c(k = "v"))
  expect_type(bytes, "raw")
  as_bytes <- reticulate::import_builtins(convert = FALSE)$bytes
  ref <- reticulate::import("safetensors.numpy")$load(as_bytes(bytes))
  expect_identical(ref$x, x$x)
  back <- safe_deserialize(bytes)
  expect_identical(back$x, x$x)
  expect_identical(back$y, x$y)
  expect_identical(attr(back, "metadata"), c(k = "v"))
  st_expect_class(safe_deserialize("not raw"), "hfbridge_error_invalid_argument")
})

test_that("safe_load_model reads one file or shards, from a folder or the Hub, eagerly or lazily", {
  dir <- withr::local_tempdir()
  one <- file.path(dir, "one")
  shards <- file.path(dir, "shards")
  dir.create(one)
  dir.create(shards)
  w <- list(emb = matrix(rnorm(12), 4, 3), b1 = c(1, 2, 3), w2 = array(1:8, c(2, 2, 2)))
  safe_save_file(w, file.path(one, "model.safetensors"), metadata = c(format = "pt"))
  safe_save_file(w["emb"], file.path(shards, "model-00001-of-00002.safetensors"))
  safe_save_file(w[c("b1", "w2")], file.path(shards, "model-00002-of-00002.safetensors"))
  jsonlite::write_json(list(metadata = list(total_size = 152),
                            weight_map = list(emb = "model-00001-of-00002.safetensors",
                                              b1 = "model-00002-of-00002.safetensors",
                                              w2 = "model-00002-of-00002.safetensors")),
                       file.path(shards, "model.safetensors.index.json"), auto_unbox = TRUE)
  a <- safe_load_model(one)
  expect_identical(attr(a, "metadata"), c(format = "pt"))
  b <- safe_load_model(shards)
  expect_identical(attr(b, "metadata"), c(total_size = "152"))
  expect_setequal(names(b), names(w))
  for (name in names(w)) expect_identical(as.vector(b[[name]]), as.vector(w[[name]]))
  expect_identical(b$emb, w$emb)
  h <- safe_load_model(shards, lazy = TRUE)
  expect_identical(h$keys(), sort(names(w)))
  expect_identical(h$get_tensor("w2"), w$w2)
  expect_identical(h$get_slice("emb", 2:3, NULL), w$emb[2:3, , drop = FALSE])
  err <- st_expect_class(h$get_tensor("nope"), "hfbridge_error_invalid_argument")
  expect_identical(err$tensor, "nope")
  st_expect_class(safe_load_model(shards, tensors = "nope"), "hfbridge_error_invalid_argument")
  h$close()
  st_expect_class(safe_load_model(dir), "hfbridge_error_entry_not_found")

  local_hub()
  publish_repo("rsttest/shards", shards)
  c <- safe_load_model("rsttest/shards", revision = "main")
  expect_identical(c, b)
  st_expect_class(safe_load_model("rsttest/nothing-here"), "hfbridge_error_repo_not_found")
})

test_that("an empty list, empty metadata and empty tensors round trip", {
  path <- withr::local_tempfile(fileext = ".safetensors")
  no_names <- stats::setNames(character(), character())
  safe_save_file(list(), path, metadata = no_names)
  w <- safe_load_file(path)
  expect_length(w, 0)
  expect_identical(attr(w, "metadata"), no_names)
  f <- reticulate::import("safetensors")$safe_open(path, "numpy")
  expect_length(f$keys(), 0)
  safe_save_file(list(e = integer(0), m = matrix(numeric(0), 0, 4)), path)
  w <- safe_load_file(path)
  expect_identical(w$e, array(integer(0), 0L))
  expect_identical(w$m, matrix(numeric(0), 0, 4))
  expect_null(attr(w, "metadata"))
})

test_that("layout = 'reversed' gives the reversed dims, and saves back the same file", {
  dir <- withr::local_tempdir()
  x <- list(m = matrix(rnorm(6), 2, 3), a = array(1:24, c(2, 3, 4)), v = c(1.5, 2.5),
            l = matrix(c(TRUE, FALSE, TRUE, TRUE, FALSE, FALSE), 2), s = 3)
  safe_save_file(x, file.path(dir, "a.safetensors"))
  w <- safe_load_file(file.path(dir, "a.safetensors"))
  r <- safe_load_file(file.path(dir, "a.safetensors"), layout = "reversed")
  expect_identical(r$m, t(w$m))
  expect_identical(r$a, aperm(w$a))
  expect_identical(r$l, t(w$l))
  expect_identical(r$v, w$v)
  expect_identical(r$s, w$s)
  h <- safe_open(file.path(dir, "a.safetensors"))
  expect_identical(h$get_tensor("a", layout = "reversed"), aperm(w$a))
  h$close()
  safe_save_file(r, file.path(dir, "b.safetensors"), layout = "reversed")
  ref <- np_load(file.path(dir, "b.safetensors"))
  expect_identical(ref$m, w$m)
  expect_identical(ref$a, w$a)
  back <- safe_deserialize(safe_serialize(r, layout = "reversed"), layout = "reversed")
  expect_identical(back$a, r$a)
  st_expect_class(safe_load_file(file.path(dir, "a.safetensors"), layout = "C"),
                  "hfbridge_error_invalid_argument")
})

test_that("without the zero-copy fill, reticulate's conversion gives the same arrays", {
  py <- st_py()
  path <- py$st_write_every_dtype(withr::local_tempdir())[["int16"]]
  f32 <- withr::local_tempfile(fileext = ".safetensors")
  safe_save_file(list(a = array(rnorm(60), c(3, 4, 5)), s = 2), f32, dtype = "float32")
  fast <- list(safe_load_file(path), safe_load_file(f32), safe_load_file(f32, layout = "reversed"))
  state <- hfbridge:::.hfb
  old <- state$st_fill
  state$st_fill <- FALSE
  withr::defer(state$st_fill <- old)
  slow <- list(safe_load_file(path), safe_load_file(f32), safe_load_file(f32, layout = "reversed"))
  expect_identical(slow, fast)
})

# Every condition signalled while `expr` runs: the value or error, and the warnings.
st_conditions <- function(expr) {
  warnings <- list()
  value <- withCallingHandlers(
    tryCatch(expr, error = function(e) e),
    warning = function(w) {
      warnings[[length(warnings) + 1]] <<- w
      invokeRestart("muffleWarning")
    }
  )
  list(value = value, warnings = warnings)
}

test_that("I32 -2^31 (R's integer NA) reads as NA with a classed warning, everywhere", {
  st_py()
  dir <- withr::local_tempdir()
  path <- file.path(dir, "model.safetensors")
  reticulate::py_run_string(sprintf(paste0(
    "safetensors.numpy.save_file({'i': np.array([[-2**31, 0], [5, -2**31]], np.int32), ",
    "'ok': np.array([2**31 - 1, -2**31 + 1], np.int32)}, '%s')"), path))
  ref <- np_load(path)
  want <- ref$i
  want[ref$i == -2^31] <- NA
  storage.mode(want) <- "integer"
  check <- function(got, name) {
    expect_length(got$warnings, 1)
    w <- got$warnings[[1]]
    expect_s3_class(w, "hfbridge_warning_na_introduced")
    expect_identical(w$tensor, "i")
    expect_identical(w$dtype, "I32")
    expect_identical(got$value[[name]], want)
  }
  check(st_conditions(safe_load_file(path)), "i")
  check(st_conditions(safe_load_model(dir)), "i")
  h <- safe_open(path)
  check(st_conditions(list(i = h$get_tensor("i"))), "i")
  expect_identical(h$get_tensor("ok"), array(c(2147483647L, -2147483647L)))
  expect_identical(st_conditions(h$get_slice("i", 2, 1))$warnings, list())
  h$close()
})

test_that("a dimension beyond R's 2^31 - 1 is hfbridge_error_unsupported, without warnings", {
  st_py()
  path <- withr::local_tempfile(fileext = ".safetensors")
  reticulate::py_run_string(sprintf(paste0(
    "safetensors.numpy.save_file({'z': np.zeros((0, 2**31), np.float32), ",
    "'edge': np.zeros((2**31 - 1, 0), np.int32), 'w': np.ones((2, 3), np.float32)}, '%s')"),
    path))
  # Python's safetensors reads the file (reticulate cannot convert z, so only its shape comes)
  reticulate::py_run_string(sprintf(paste0(
    "st_big = safetensors.numpy.load_file('%s')\n",
    "st_big_shapes = {k: [float(d) for d in v.shape] for k, v in st_big.items()}"), path))
  ref <- list(shapes = reticulate::py_eval("st_big_shapes"),
              w = reticulate::py_eval("st_big['w']"), edge = reticulate::py_eval("st_big['edge']"))
  expect_identical(ref$shapes$z, c(0, 2^31))
  unsupported <- function(got) {
    expect_identical(got$warnings, list())
    expect_s3_class(got$value, "hfbridge_error_unsupported")
    expect_identical(got$value$tensor, "z")
    expect_match(conditionMessage(got$value), "2^31 - 1", fixed = TRUE)
  }
  unsupported(st_conditions(safe_load_file(path)))
  unsupported(st_conditions(safe_load_file(path, layout = "reversed")))
  unsupported(st_conditions(safe_load_model(path)))
  got <- st_conditions(safe_load_file(path, tensors = c("edge", "w")))
  expect_identical(got$warnings, list())
  expect_identical(got$value$edge, array(integer(0), c(2147483647L, 0L)))
  expect_identical(got$value$w, ref$w)
  got <- st_conditions(h <- safe_open(path))
  expect_identical(got$warnings, list())
  expect_identical(h$shape("z"), ref$shapes$z)
  expect_identical(h$shape("edge"), c(2147483647L, 0L))
  expect_match(capture.output(print(h)), "0 x 2147483648", fixed = TRUE, all = FALSE)
  unsupported(st_conditions(h$get_tensor("z")))
  unsupported(st_conditions(h$get_slice("z", NULL, 1:2)))
  expect_identical(h$get_tensor("edge"), ref$edge)
  h$close()
})

test_that("zero-size shapes whose product overflows are classed errors, without warnings", {
  py <- st_py()
  dir <- withr::local_tempdir()
  shapes <- list(c(2^40, 2^40, 0), c(0, 2^40, 2^40), c(0, 2^63), c(0, 2^53 + 2))
  for (k in seq_along(shapes)) {
    shape <- format(shapes[[k]], scientific = FALSE)
    path <- file.path(dir, sprintf("s%d.safetensors", k))
    reticulate::py_run_string(sprintf(
      "st_with_header('%s', {'a': {'dtype': 'F32', 'shape': [%s], 'data_offsets': [0, 0]}}, 0)",
      path, paste(shape, collapse = ", ")))
    for (read in list(function() safe_load_file(path),
                      function() safe_open(path)$get_tensor("a"))) {
      got <- st_conditions(read())
      expect_identical(got$warnings, list())
      expect_true(inherits(got$value, "hfbridge_error_unsupported") ||
                    inherits(got$value, "hfbridge_error_invalid_file"),
                label = paste(shape, collapse = " x "))
    }
  }
})

test_that("large results (kept outside R's heap) behave as ordinary R arrays, load after load", {
  st_py()
  dir <- withr::local_tempdir()
  paths <- file.path(dir, c("a.safetensors", "b.safetensors"))
  reticulate::py_run_string(sprintf(paste0(
    "safetensors.numpy.save_file({'f': st_values('float32', (700, 500)), ",
    "'i': st_values('int32', (300, 1000)), 'v': st_values('float64', (200000,))}, '%s')\n",
    "safetensors.numpy.save_file({'g': st_values('float16', (1000, 300))}, '%s')"),
    paths[1], paths[2]))
  ref <- lapply(paths, np_load)
  for (round in 1:3) {
    for (k in 1:2) {
      w <- safe_load_file(paths[k])
      for (name in names(ref[[k]])) {
        want <- ref[[k]][[name]]
        storage.mode(want) <- typeof(w[[name]])
        expect_identical(w[[name]], want, label = paste(round, name))
      }
      rm(w)
      invisible(gc())
    }
  }
  w <- safe_load_file(paths[1])
  expect_identical(safe_load_file(paths[1], layout = "reversed")$f, t(w$f))
  h <- safe_open(paths[1])
  expect_identical(h$get_tensor("i"), w$i)
  h$close()
  copy <- w$f
  copy[1, 1] <- 42
  expect_identical(w$f[1, 1], ref[[1]]$f[1, 1])
  w$i[2, 3] <- 7L
  expect_identical(w$i[2, 3], 7L)
  rds <- withr::local_tempfile(fileext = ".rds")
  saveRDS(w, rds)
  expect_identical(readRDS(rds), w)
  expect_identical(w$f + 0, ref[[1]]$f + 0)
})
