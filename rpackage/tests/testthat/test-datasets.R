# hub_dataset() and friends against datasets.load_dataset() on the same repos of the test mirror.
# load_dataset runs in a child Python, which prints each split's values and features as JSON.

datasets_write <- "hf_rDatasetsWriteToken01234"

datasets_repos <- function() {
  if (is.null(.test_hub$datasets_published)) {
    folders <- hfbridge:::pybridge_module("fixtures.datasets")$ensure()
    for (name in names(folders)) {
      publish_repo(paste0("rds/", name), folders[[name]], repo_type = "dataset")
    }
    .test_hub$datasets_published <- TRUE
  }
  invisible(TRUE)
}

# datasets.load_dataset(repo_id, config, split) in a child Python: list(names, columns), each
# column list(type, arrow (its arrow type), names (ClassLabel), values), NaN as "NaN", timestamps
# as epoch seconds, a NUL in a string as the two characters \0 (as hfbridge writes it).
datasets_reference <- function(repo_id, split = "train", config = "-") {
  code <- paste(
    "import json, math, sys, datetime, datasets",
    sprintf("repo, config, split = %s, %s, %s", jsonlite::toJSON(repo_id, auto_unbox = TRUE),
            jsonlite::toJSON(config, auto_unbox = TRUE),
            jsonlite::toJSON(split, auto_unbox = TRUE)),
    "ds = datasets.load_dataset(repo, None if config == '-' else config, split=split)",
    "def plain(v):",
    "    if isinstance(v, float) and math.isnan(v): return 'NaN'",
    "    if isinstance(v, datetime.datetime):",
    "        return (v.replace(tzinfo=None) - datetime.datetime(1970, 1, 1)).total_seconds()",
    "    if isinstance(v, datetime.date): return (v - datetime.date(1970, 1, 1)).days",
    "    if isinstance(v, list): return [plain(x) for x in v]",
    "    if isinstance(v, str): return v.replace(chr(0), chr(92) + '0')",
    "    return v",
    "t = ds.data.table",
    "cols = {}",
    "for name, f in ds.features.items():",
    "    cols[name] = {'type': type(f).__name__, 'names': getattr(f, 'names', None),",
    "                  'arrow': str(t.column(name).type),",
    "                  'values': [plain(v) for v in t.column(name).to_pylist()]}",
    "print(json.dumps({'names': t.column_names, 'columns': cols}))",
    sep = "\n")
  out <- hub_test_python(paste0(code, "\n"), env = c(
    HF_ENDPOINT = Sys.getenv("HF_ENDPOINT"), HF_HOME = tempfile("py-home-"),
    HF_HUB_DISABLE_XET = "1"))
  jsonlite::fromJSON(out[length(out)], simplifyVector = FALSE)
}

datasets_plain <- function(values, na, convert) {
  vapply(values, function(v) if (is.null(v)) na else convert(v), na)
}

datasets_expected <- function(col) {
  v <- col$values
  num <- function(x) if (identical(x, "NaN")) NaN else as.numeric(x)
  if (identical(col$type, "ClassLabel")) {
    return(factor(unlist(col$names)[datasets_plain(v, NA_integer_, as.integer) + 1L],
                  levels = unlist(col$names)))
  }
  firsts <- Filter(Negate(is.null), v)
  if (!length(firsts)) return(rep(NA, length(v)))
  x <- firsts[[1]]
  if (is.list(x) || identical(col$type, "List")) {
    child <- sub("^(large_)?list<[^:]*: (.*)>$", "\\2", col$arrow)
    convert <- if (grepl("int", child)) as.integer else if (grepl("float|double", child))
      as.numeric else identity
    return(lapply(v, function(e) {
      if (is.null(e)) return(NULL)
      e <- unlist(lapply(e, function(z) if (is.null(z)) NA else z))
      if (is.null(e)) return(logical())
      convert(e)
    }))
  }
  if (is.logical(x)) return(datasets_plain(v, NA, as.logical))
  if (is.character(x) && !identical(x, "NaN")) return(datasets_plain(v, NA_character_, identity))
  datasets_plain(v, NA_real_, num)
}

expect_equal_to_datasets <- function(df, ref) {
  expect_identical(names(df), unlist(ref$names))
  for (name in names(df)) {
    col <- ref$columns[[name]]
    want <- datasets_expected(col)
    got <- df[[name]]
    if (inherits(got, "POSIXct")) got <- as.numeric(got)
    if (is.integer(got) && is.double(want)) want <- as.integer(want)
    if (is.list(got)) {
      got <- lapply(got, function(e) {
        if (is.null(e)) NULL else if (!length(e)) logical() else as.vector(e)
      })
    }
    if (inherits(got, "Date")) got <- as.numeric(got)
    expect_identical(got, want, label = name)
  }
}

test_that("hub_dataset() equals load_dataset() on parquet shards, configs, csv, tsv, jsonl", {
  local_hub()
  datasets_repos()
  cases <- list(list("rds/sharded", "train", NULL), list("rds/sharded", "test", NULL),
                list("rds/configs", "train", NULL), list("rds/configs", "validation", "second"),
                list("rds/csv", "train", NULL), list("rds/tsv", "train", NULL),
                list("rds/jsonl", "validation", NULL))
  for (case in cases) {
    df <- hub_dataset(case[[1]], split = case[[2]], config = case[[3]], quiet = TRUE)
    ref <- datasets_reference(case[[1]], case[[2]], if (is.null(case[[3]])) "-" else case[[3]])
    expect_equal_to_datasets(df, ref)
  }
  df <- hub_dataset("rds/sharded", quiet = TRUE)
  expect_s3_class(df$label, "factor")
  expect_identical(levels(df$label), c("neg", "pos", "neutral"))
  expect_type(df$ids, "list")
  expect_type(df$idx, "integer")
  expect_s3_class(df$when, "POSIXct")
  expect_true(anyNA(df$text) && anyNA(df$score) && any(is.nan(df$score)))
  expect_true(any(vapply(df$ids, is.null, logical(1))))
})

test_that("every type's edge cases equal datasets.load_dataset(), whole, in chunks and empty", {
  local_hub()
  datasets_repos()
  df <- hub_dataset("rds/edge", quiet = TRUE)
  expect_equal_to_datasets(df, datasets_reference("rds/edge"))
  expect_identical(df$s, df$ls)  # large_string (int64 offsets) reads as string does
  expect_identical(df$s[1:5], c(NA, "", "a", "caf\u00e9 \U0001F600 na\u00efve", "x\\0y"))
  expect_identical(Encoding(df$s[4]), "UTF-8")
  expect_identical(df$lstr[[5]], "x\\0")
  expect_identical(df$li[2:3], list(NULL, integer()))
  chunks <- hub_dataset_chunks("rds/edge", chunk_size = 4, callback = function(chunk, i) chunk,
                               progress = FALSE)
  expect_identical(do.call(rbind, chunks), df, ignore_attr = "row.names")
  empty <- hub_dataset("rds/edge_empty", quiet = TRUE)
  expect_identical(nrow(empty), 0L)
  keep <- names(df) != "i64"  # int64 is integer when every value fits, as none do here
  expect_identical(empty[keep], df[0, keep])
})

test_that("the Hub's parquet export (refs/convert/parquet) reads as the main revision", {
  local_hub()
  datasets_repos()
  export <- "refs/convert/parquet"
  for (case in list(c("first", "train"), c("first", "validation"), c("second", "train"),
                    c("second", "validation"))) {
    got <- hub_dataset("rds/converted", split = case[2], config = case[1], revision = export,
                       quiet = TRUE)
    main <- hub_dataset("rds/converted", split = case[2], config = case[1], quiet = TRUE)
    expect_identical(got, main, label = paste(case, collapse = "/"))
  }
  expect_equal_to_datasets(got, datasets_reference("rds/converted", "validation", "second"))
  info <- hub_dataset_info("rds/converted", revision = export)
  expect_identical(paste(info$splits$config, info$splits$split, info$splits$num_files),
                   c("first train 1", "first validation 1", "second train 2",
                     "second validation 1"))
  expect_identical(info$splits$num_rows, c(60, 25, 60, 25))
  expect_identical(nrow(hub_dataset("rds/converted", config = "second", revision = export,
                                    n_max = 31, quiet = TRUE)), 31L)
})

test_that("a string column, read lazily from arrow, acts as a character vector", {
  local_hub()
  datasets_repos()
  want <- datasets_expected(datasets_reference("rds/edge")$columns$s)
  df <- hub_dataset("rds/edge", quiet = TRUE)
  x <- df$s
  expect_identical(x[4], want[4])  # one element made, the others still in arrow's buffers
  rm(df)
  invisible(gc())
  reticulate::import("gc")$collect()  # only the vector keeps the arrow array alive now
  expect_identical(x[1:3], want[1:3])
  expect_true(anyNA(x))
  expect_identical(x, want)
  one_by_one <- hub_dataset("rds/edge", quiet = TRUE)$s  # the array goes when all are made
  expect_identical(vapply(seq_along(want), function(i) one_by_one[[i]], ""), want)
  expect_identical(one_by_one, want)
  x[2] <- "changed"
  expect_identical(hub_dataset("rds/edge", quiet = TRUE)$s, want)
  expect_identical(x, replace(want, 2, "changed"))
  fresh <- hub_dataset("rds/edge", quiet = TRUE)$s  # serialized before any element is made
  expect_identical(unserialize(serialize(fresh, NULL)), want)
  f <- withr::local_tempfile(fileext = ".rds")
  saveRDS(hub_dataset("rds/edge", quiet = TRUE), f)
  expect_identical(readRDS(f)$s, want)
  fresh <- hub_dataset("rds/edge", quiet = TRUE)$s
  expect_identical(c(sort(unique(fresh)), NA), c(sort(unique(want)), NA))
  expect_identical(match(want, fresh), match(want, want))
  expect_identical(paste0(fresh, "!"), paste0(want, "!"))
})

test_that("a file that cannot be read is an invalid_file error that names it", {
  local_hub()
  datasets_repos()
  good <- hfbridge:::pybridge_module("fixtures.datasets")$ensure(names = list("sharded"))$sharded
  shard <- file.path(good, "data", "train-00000-of-00003.parquet")
  bytes <- readBin(shard, "raw", file.size(shard))
  folder <- withr::local_tempdir()
  dir.create(file.path(folder, "data"))
  writeBin(bytes[seq_len(length(bytes) %/% 2)],  # cut short: no footer
           file.path(folder, "data", "train-00000-of-00001.parquet"))
  writeBin(c(bytes[1:200], as.raw(seq_len(3000) %% 251), utils::tail(bytes, 500)),
           file.path(folder, "data", "test-00000-of-00001.parquet"))  # a corrupted middle
  publish_repo("rds/unreadable", folder, repo_type = "dataset")
  for (split in c("train", "test")) {
    err <- tryCatch(hub_dataset("rds/unreadable", split = split, quiet = TRUE), error = identity)
    expect_s3_class(err, "hfbridge_error_invalid_file")
    expect_identical(err$filename, sprintf("data/%s-00000-of-00001.parquet", split))
    expect_match(conditionMessage(err), "cannot be read as parquet")
  }
  expect_error(hub_dataset_info("rds/unreadable"), class = "hfbridge_error_invalid_file")
  expect_error(hub_dataset_chunks("rds/unreadable", split = "test", chunk_size = 10,
                                  callback = function(chunk, i) NULL, progress = FALSE),
               class = "hfbridge_error_invalid_file")
  text <- withr::local_tempdir()
  writeLines(c("{\"a\": 1}", "{\"a\": "), file.path(text, "train.jsonl"))  # cut short
  writeLines(c("a,b", "1,2", "\"never closed"), file.path(text, "test.csv"))
  publish_repo("rds/unreadable_text", text, repo_type = "dataset")
  for (split in c("train", "test")) {
    err <- tryCatch(hub_dataset("rds/unreadable_text", split = split, quiet = TRUE),
                    error = identity)
    expect_s3_class(err, "hfbridge_error_invalid_file")
    expect_identical(err$filename, if (split == "train") "train.jsonl" else "test.csv")
  }
})

test_that("a string that is not UTF-8 is an invalid_file error, not a string R cannot use", {
  # datasets fails on such a row too (UnicodeDecodeError), but only when the row is read.
  local_hub()
  datasets_repos()
  for (split in c("train", "test")) {
    err <- tryCatch(hub_dataset("rds/not_utf8", split = split, quiet = TRUE), error = identity)
    expect_s3_class(err, "hfbridge_error_invalid_file")
    expect_identical(err$filename, sprintf("data/%s-00000-of-00001.parquet", split))
    expect_match(conditionMessage(err), sprintf("column '%s'.*UTF8",
                                                if (split == "train") "text" else "tags"))
  }
  expect_error(hub_dataset_chunks("rds/not_utf8", chunk_size = 1, progress = FALSE,
                                  callback = function(chunk, i) NULL),
               class = "hfbridge_error_invalid_file")
  ok <- hub_dataset("rds/not_utf8", split = "test", columns = "id", quiet = TRUE)
  expect_identical(ok$id, 1:2)
})

test_that("columns and n_max read only what is asked, from the first shard only", {
  local_hub()
  datasets_repos()
  hub_mirror_requests(reset = TRUE)
  df <- hub_dataset("rds/sharded", columns = c("text", "label"), n_max = 7, quiet = TRUE)
  expect_identical(names(df), c("text", "label"))
  expect_identical(nrow(df), 7L)
  full <- hub_dataset("rds/sharded", quiet = TRUE)
  expect_identical(df, full[1:7, c("text", "label")], ignore_attr = "row.names")
  none <- hub_dataset("rds/sharded", n_max = 0, quiet = TRUE)
  keep <- names(full) != "big"  # int64 is integer when every value fits, as none do here
  expect_identical(none[keep], full[0, keep])  # typed columns, no rows
})

test_that("missing split, config, column, repo and gated repos are classed errors", {
  local_hub()
  datasets_repos()
  err <- tryCatch(hub_dataset("rds/configs", "test"), error = identity)
  expect_s3_class(err, "hfbridge_error_entry_not_found")
  expect_identical(unlist(err$splits), c("train", "validation"))
  err <- tryCatch(hub_dataset("rds/configs", config = "third"), error = identity)
  expect_s3_class(err, "hfbridge_error_entry_not_found")
  expect_identical(unlist(err$configs), c("first", "second"))
  err <- tryCatch(hub_dataset("rds/csv", columns = c("text", "nope")), error = identity)
  expect_s3_class(err, "hfbridge_error_entry_not_found")
  expect_true(all(c("idx", "text", "score", "flag") %in% unlist(err$columns)))
  expect_error(hub_dataset("rds/absent"), class = "hfbridge_error_repo_not_found")
  mirror_config(list(gated = list("datasets/rds/csv" = list("hf_someoneElseToken0123"))))
  expect_error(hub_dataset("rds/csv"), class = "hfbridge_error_gated")
  expect_error(hub_dataset("rds/csv", n_max = -1), class = "hfbridge_error_invalid_argument")
  expect_error(hub_dataset("rds/csv", columns = NA), class = "hfbridge_error_invalid_argument")
  expect_error(hub_dataset("rds/csv", bogus = 1), class = "hfbridge_error_invalid_argument")
})

test_that("offline after a first read: the same data frame, no request", {
  local_hub()
  datasets_repos()
  first <- hub_dataset("rds/sharded", "test", quiet = TRUE)
  withr::local_envvar(HF_HUB_OFFLINE = "1")
  hub_mirror_requests(reset = TRUE)
  again <- hub_dataset("rds/sharded", "test", quiet = TRUE)
  expect_identical(hub_mirror_requests()$total, 0L)
  expect_identical(again, first)
  expect_error(hub_dataset("rds/sharded", "train"), class = "hfbridge_error_offline_not_cached")
})

test_that("hub_dataset_info() offline: offline_not_cached for a split not read, then as online", {
  local_hub()
  datasets_repos()
  hub_dataset("rds/configs", config = "first", n_max = 5, quiet = TRUE)
  err <- withr::with_envvar(c(HF_HUB_OFFLINE = "1"), tryCatch(hub_dataset_info("rds/configs"),
                                                               error = identity))
  expect_s3_class(err, "hfbridge_error_offline_not_cached")
  expect_identical(err$split, "validation")
  for (split in c("validation", "train")) {
    for (config in c("first", "second")) hub_dataset("rds/configs", split, config, quiet = TRUE)
  }
  online <- hub_dataset_info("rds/configs")
  withr::local_envvar(HF_HUB_OFFLINE = "1")
  expect_identical(hub_dataset_info("rds/configs")$splits, online$splits)
})

test_that("hub_dataset_info() gives configs, splits, rows, bytes and features", {
  local_hub()
  datasets_repos()
  info <- hub_dataset_info("rds/configs")
  expect_identical(info$default_config, "first")
  expect_identical(info$splits$config, c("first", "first", "second", "second"))
  expect_identical(info$splits$num_rows, c(60, 25, 60, 25))
  expect_true(all(info$splits$num_bytes > 0))
  label <- info$features[info$features$column == "label", ]
  expect_identical(label$levels[1], "neg|pos|neutral")
  csv <- hub_dataset_info("rds/csv")
  expect_identical(csv$splits$split, c("train", "test"))
  expect_true(all(is.na(csv$splits$num_rows)))
})

test_that("hub_dataset_chunks() streams a split chunk by chunk", {
  local_hub()
  datasets_repos()
  full <- hub_dataset("rds/sharded", quiet = TRUE)
  chunks <- hub_dataset_chunks("rds/sharded", "train", chunk_size = 64,
                               callback = function(chunk, i) chunk, progress = FALSE)
  expect_identical(vapply(chunks, nrow, 1L), c(rep(64L, 5), 1L))
  expect_identical(do.call(rbind, chunks), full, ignore_attr = "row.names")
  seen <- hub_dataset_chunks("rds/sharded", "train", chunk_size = 100,
                             callback = function(chunk, i) if (i == 2) FALSE else i,
                             progress = FALSE)
  expect_length(seen, 2)
})

test_that("hub_upload_dataset() round trip: equal in R, same features in datasets", {
  local_hub()
  mirror_config(list(write = list("datasets/rdsup/*" = list(datasets_write))))
  df <- data.frame(
    n = c(1L, NA, 3L), x = c(0.5, NaN, NA), ok = c(TRUE, NA, FALSE),
    text = c("café", NA, ""), label = factor(c("pos", "neg", NA), levels = c("neg", "pos")),
    day = as.Date(c("2024-01-02", NA, "1969-12-31")),
    at = as.POSIXct(c(0, 1.5e9, NA), origin = "1970-01-01", tz = "UTC"),
    stringsAsFactors = FALSE)
  df$ids <- list(1:3, integer(), NULL)
  res <- hub_upload_dataset(df, "rdsup/round", token = datasets_write, quiet = TRUE)
  expect_match(res$commit_oid, "^[0-9a-f]{40}$")
  expect_true("data/train-00000-of-00001.parquet" %in% hub_list_files("rdsup/round",
                                                                      repo_type = "dataset"))
  back <- hub_dataset("rdsup/round", quiet = TRUE)
  expect_identical(back, df)
  expect_identical(is.nan(back$x), c(FALSE, TRUE, FALSE))  # NaN stays NaN, NA stays NA
  ref <- datasets_reference("rdsup/round", "train", "-")
  expect_identical(ref$columns$x$values[2:3], list("NaN", NULL))
  expect_identical(ref$columns$label$type, "ClassLabel")
  expect_identical(unlist(ref$columns$label$names), c("neg", "pos"))
  expect_identical(ref$columns$ids$type, "List")
  expect_equal_to_datasets(back, ref)
  # Lists of classed values (factor, Date, POSIXct) keep their class in each row.
  lists <- data.frame(id = 1:3)
  lists$tags <- list(factor(c("b", "a"), levels = c("a", "b")), factor(character(), c("a", "b")),
                     NULL)
  lists$days <- list(as.Date(c("2024-01-02", "1969-12-31")), NULL, as.Date(NA))
  hub_upload_dataset(lists, "rdsup/lists", token = datasets_write, quiet = TRUE)
  expect_identical(hub_dataset("rdsup/lists", quiet = TRUE), lists)
  expect_identical(datasets_reference("rdsup/lists", "train", "-")$columns$tags$type, "List")
  expect_error(hub_upload_dataset(df, "rdsup/round"), class = "hfbridge_error_auth")
  expect_error(hub_upload_dataset(data.frame(z = 1i), "rdsup/round", token = datasets_write),
               class = "hfbridge_error_invalid_argument")
})

# Dataset.push_to_hub() in a child Python, the token able to write; `code` makes `ds`.
datasets_push <- function(code, push_args) {
  hub_test_python(paste0(paste(
    "import datasets", code, sprintf("ds.push_to_hub(%s)", push_args), sep = "\n"), "\n"),
    env = c(HF_ENDPOINT = Sys.getenv("HF_ENDPOINT"), HF_HOME = tempfile("py-home-"),
            HF_HUB_DISABLE_XET = "1", HF_TOKEN = datasets_write))
}

test_that("hub_upload_dataset() replaces a split pushed by datasets, as push_to_hub does", {
  local_hub()
  mirror_config(list(write = list("datasets/rdsup/*" = list(datasets_write))))
  datasets_push(paste(
    "f = datasets.Features({'text': datasets.Value('string'), 'label': datasets.Value('int32')})",
    "d = lambda t, n: datasets.Dataset.from_dict({'text': [t] * n, 'label': [0] * n}, features=f)",
    "ds = datasets.DatasetDict({'train': d('a', 2000), 'test': d('t', 3)})", sep = "\n"),
    "'rdsup/pushed', max_shard_size = '10KB'")
  expect_length(grep("^data/train-", hub_list_files("rdsup/pushed", repo_type = "dataset")), 2L)
  df <- data.frame(text = c("x", "y"), label = 1:2)
  hub_upload_dataset(df, "rdsup/pushed", token = datasets_write, quiet = TRUE)
  files <- hub_list_files("rdsup/pushed", repo_type = "dataset")
  expect_identical(grep("^data/train-", files, value = TRUE), "data/train-00000-of-00001.parquet")
  back <- hub_dataset("rdsup/pushed", quiet = TRUE)
  expect_identical(back, df)
  expect_equal_to_datasets(back, datasets_reference("rdsup/pushed", "train", "-"))
  expect_length(datasets_reference("rdsup/pushed", "test", "-")$columns$text$values, 3L)
  splits <- hub_dataset_info("rdsup/pushed")$splits
  expect_identical(setNames(splits$num_rows, splits$split), c(train = 2, test = 3))
  # Other columns are refused while another split has the old ones.
  err <- tryCatch(hub_upload_dataset(data.frame(score = 0.5), "rdsup/pushed",
                                     token = datasets_write), error = identity)
  expect_s3_class(err, "hfbridge_error_invalid_argument")
  # A config pushed with config_name is written where datasets and hub_dataset() read it.
  datasets_push("ds = datasets.Dataset.from_dict({'text': ['a', 'b']})",
                "'rdsup/configured', config_name = 'reviews'")
  hub_upload_dataset(data.frame(score = c(0.5, 2)), "rdsup/configured", config = "reviews",
                     token = datasets_write, quiet = TRUE)
  back <- hub_dataset("rdsup/configured", config = "reviews", quiet = TRUE)
  expect_identical(back, data.frame(score = c(0.5, 2)))
  expect_equal_to_datasets(back, datasets_reference("rdsup/configured", "train", "reviews"))
})

test_that("hub_upload_dataset() refuses text that is not UTF-8, naming the column, in R", {
  bad <- function(df, column, field = "rows", where = 1L) {
    err <- tryCatch(hub_upload_dataset(df, "rdsup/refused"), error = identity)
    expect_s3_class(err, "hfbridge_error_invalid_argument")
    expect_identical(err$column, column)
    expect_identical(err[[field]], where)
    expect_match(conditionMessage(err), sprintf("Column '%s' of `df`.*not valid UTF-8", column))
  }
  bad(data.frame(a = "ok", b = c("caf\xe9")), "b")
  bad(data.frame(a = c("fine", "\xff\xfe")), "a", where = 2L)
  bad(data.frame(f = factor(c("x", "caf\xe9"), levels = c("x", "caf\xe9"))), "f", "levels", 2L)
  lists <- data.frame(id = 1:2)
  lists$tags <- list(c("a", "b"), c("c", "\xff"))
  bad(lists, "tags", "values", 4L)
  named <- data.frame(a = 1, b = 2)
  names(named)[2] <- "\xff"
  err <- tryCatch(hub_upload_dataset(named, "rdsup/refused"), error = identity)
  expect_s3_class(err, "hfbridge_error_invalid_argument")
  expect_identical(err$columns, 2L)
  expect_match(conditionMessage(err), "A column name of `df` is not valid UTF-8 at column 2")
})

test_that("hub_upload_dataset() refuses matrix, array and data frame columns, in R", {
  for (kind in c("matrix", "array", "data frame")) {
    df <- data.frame(a = 1:2)
    df$m <- switch(kind, matrix = matrix(1:4, 2), array = array(1:8, c(2, 2, 2)),
                   "data frame" = data.frame(x = 1:2, y = 3:4))
    err <- tryCatch(hub_upload_dataset(df, "rdsup/refused"), error = identity)
    expect_s3_class(err, "hfbridge_error_invalid_argument")
    expect_identical(err$column, "m")
    expect_match(conditionMessage(err), sprintf("Column 'm' of `df` is a %s", kind))
  }
})

test_that("a list column of mixed types is refused; integer with double and NA are one type", {
  local_hub()
  mirror_config(list(write = list("datasets/rdsup/*" = list(datasets_write))))
  err <- tryCatch(hub_upload_dataset(data.frame(a = I(list(1, "a"))), "rdsup/mixed",
                                     token = datasets_write), error = identity)
  expect_s3_class(err, "hfbridge_error_invalid_argument")
  expect_identical(err$column, "a")
  expect_identical(err$types, c("numeric", "character"))
  err <- tryCatch(hub_upload_dataset(data.frame(d = I(list(Sys.Date(), factor("x")))),
                                     "rdsup/mixed", token = datasets_write), error = identity)
  expect_identical(err$types, c("Date", "factor"))
  df <- data.frame(id = 1:4)
  df$x <- list(1:2, c(0.5, 2), NA, integer())
  hub_upload_dataset(df, "rdsup/numbers", token = datasets_write, quiet = TRUE)
  back <- hub_dataset("rdsup/numbers", quiet = TRUE)
  expect_identical(back$x, list(c(1, 2), c(0.5, 2), NA_real_, numeric()))
})

test_that("n_max beyond R's integer range reads every row, as Inf does", {
  local_hub()
  datasets_repos()
  full <- hub_dataset("rds/csv", quiet = TRUE)
  expect_no_warning(all <- hub_dataset("rds/csv", n_max = 1e12, quiet = TRUE))
  expect_identical(all, full)
  expect_identical(hub_dataset("rds/csv", n_max = 2^31, quiet = TRUE), full)
  expect_identical(nrow(hub_dataset("rds/csv", n_max = 2^31 - 1, quiet = TRUE)), nrow(full))
  expect_error(hub_dataset("rds/csv", n_max = 1e12 + 0.5),
               class = "hfbridge_error_invalid_argument")
})

test_that("files that cannot be read are invalid_file with the filename, whole and in chunks", {
  local_hub()
  each_call <- function(repo_id, filename, split = "train", info = FALSE) {
    calls <- list(
      whole = function() hub_dataset(repo_id, split = split, quiet = TRUE),
      chunks = function() {
        hub_dataset_chunks(repo_id, split = split, chunk_size = 1,
                           callback = function(chunk, i) NULL, progress = FALSE)
      })
    if (info) calls$info <- function() hub_dataset_info(repo_id)
    for (call in names(calls)) {
      err <- tryCatch(calls[[call]](), error = identity)
      expect_s3_class(err, "hfbridge_error_invalid_file")
      expect_identical(err$filename, filename, label = paste(repo_id, call))
    }
  }
  scalar <- withr::local_tempdir()
  writeLines("42", file.path(scalar, "train.json"))
  publish_repo("rds/json_scalar", scalar, repo_type = "dataset")
  each_call("rds/json_scalar", "train.json")
  shards <- withr::local_tempdir()
  dir.create(file.path(shards, "data"))
  pq <- reticulate::import("pyarrow.parquet")
  pa <- reticulate::import("pyarrow")
  pq$write_table(pa$table(list(a = 1:2)), file.path(shards, "data/train-00000-of-00002.parquet"))
  pq$write_table(pa$table(list(b = c("x", "y"))),
                 file.path(shards, "data/train-00001-of-00002.parquet"))
  publish_repo("rds/schemas", shards, repo_type = "dataset")
  each_call("rds/schemas", "data/train-00001-of-00002.parquet")
  yaml <- withr::local_tempdir()
  writeLines(c("---", "configs:", "- config_name: x", "  data_files: [nope/*.csv", "---"),
             file.path(yaml, "README.md"))
  writeLines(c("a", "1"), file.path(yaml, "train.csv"))
  publish_repo("rds/bad_yaml", yaml, repo_type = "dataset")
  each_call("rds/bad_yaml", "README.md", info = TRUE)
})

test_that("a dataset repo of only a README has no data files: entry_not_found", {
  local_hub()
  folder <- withr::local_tempdir()
  writeLines(c("---", "license: mit", "---", "# Nothing yet"), file.path(folder, "README.md"))
  publish_repo("rds/readme_only", folder, repo_type = "dataset")
  err <- tryCatch(hub_dataset("rds/readme_only", quiet = TRUE), error = identity)
  expect_s3_class(err, "hfbridge_error_entry_not_found")
  expect_match(conditionMessage(err), "has no data files that datasets recognises")
  expect_error(hub_dataset_info("rds/readme_only"), class = "hfbridge_error_entry_not_found")
})
