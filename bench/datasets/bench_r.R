# (a) hub_dataset() from the cache of a local mirror (hub_dataset_nchar: then nchar() of the
# string column, which makes every R string); (c) pyarrow's read_table() through reticulate by
# hand: reticulate 1.28 leaves a pandas 3 DataFrame unconverted, so each column goes through
# to_pylist() and atomic ones are unlisted. One warm-up, then one timed read; prints seconds,
# the process's peak RSS (MB) and object.size() of the result (MB).
args <- commandArgs(TRUE)
mode <- args[1]
path <- args[2]
library(hfbridge)
read <- switch(mode,
  hub_dataset = function() hub_dataset("bench/datasets", quiet = TRUE),
  hub_dataset_nchar = function() {
    df <- hub_dataset("bench/datasets", quiet = TRUE)
    df$nchar <- nchar(df$text)
    df
  },
  reticulate = function() {
    pq <- reticulate::import("pyarrow.parquet", convert = FALSE)
    tbl <- pq$read_table(path)
    cols <- reticulate::py_to_r(tbl$column_names)
    out <- lapply(cols, function(n) {
      values <- reticulate::py_to_r(tbl$column(n)$to_pylist())
      if (n == "ids") values else unlist(values)
    })
    names(out) <- cols
    df <- as.data.frame(out[setdiff(cols, "ids")], stringsAsFactors = FALSE)
    df$ids <- out$ids
    df
  })
if (mode == "reticulate") hfbridge:::start_python()
invisible(read())
gc()
seconds <- system.time(df <- read())[["elapsed"]]
stopifnot(nrow(df) > 0)
rss <- as.numeric(sub(".*:\\s+(\\d+) kB", "\\1",
                      grep("VmHWM", readLines("/proc/self/status"), value = TRUE))) / 1024
cat(sprintf("result %s %.3f %.0f %.0f\n", mode, seconds, rss,
            as.numeric(object.size(df)) / 2^20))
