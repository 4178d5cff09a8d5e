# Cached hub_download from R against Python's hf_hub_download, in one run, on one mirror and
# one cache. Cases: a pinned commit (no request expected), "main" (one HEAD per call, as in
# huggingface_hub), and offline (HF_HUB_OFFLINE=1, no request). Every R call is timed alone
# (wall clock, including hf_env(), the argument checks and the reticulate round trip).
args <- commandArgs(trailingOnly = TRUE)
n <- if (length(args) >= 1) as.integer(args[[1]]) else 200L
target_ms <- 5

if (identical(Sys.getenv("HFBRIDGE_BENCH_LOAD_ALL"), "1")) {
  pkgload::load_all("rpackage", quiet = TRUE)
} else {
  library(hfbridge)
}

repo <- "bench/tiny"
src <- file.path(tempfile("hub-bench-src-"))
dir.create(src)
writeLines('{"model_type": "tiny", "hidden_size": 32}', file.path(src, "config.json"))
store <- tempfile("hub-bench-store-")
hub_mirror_publish(store, repo, src)
mirror <- hub_mirror_start(store)
on.exit(hub_mirror_stop(mirror), add = TRUE)
home <- tempfile("hub-bench-home-")
Sys.setenv(HF_ENDPOINT = mirror$url, HF_HOME = home)
Sys.unsetenv(c("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_TOKEN"))

path <- hub_download(repo, "config.json", quiet = TRUE)
sha <- hub_repo_info(repo)$sha
cat(sprintf("hub bench: %d cached calls per case, repo %s at %s\n", n, repo, substr(sha, 1, 12)))

time_r <- function(revision) {
  hub_download(repo, "config.json", revision = revision)
  hub_mirror_stats(mirror, reset = TRUE)
  times <- numeric(n)
  for (i in seq_len(n)) {
    t0 <- Sys.time()
    p <- hub_download(repo, "config.json", revision = revision)
    times[i] <- as.numeric(Sys.time() - t0, units = "secs")
  }
  stopifnot(identical(p, path))
  list(median = stats::median(times), requests = hub_mirror_stats(mirror)$total)
}

time_python <- function(revisions, offline = FALSE) {
  python <- Sys.getenv("RETICULATE_PYTHON")
  env <- c("current", LD_LIBRARY_PATH = "", HF_HUB_OFFLINE = if (offline) "1" else "0")
  hub_mirror_stats(mirror, reset = TRUE)
  res <- processx::run(python, c("bench/hub/py_download.py", n, repo, "config.json", revisions),
                       env = env)
  out <- jsonlite::fromJSON(utils::tail(strsplit(res$stdout, "\n")[[1]], 1))
  list(medians = out, requests = hub_mirror_stats(mirror)$total)
}

r_pinned <- time_r(sha)
r_main <- time_r("main")
Sys.setenv(HF_HUB_OFFLINE = "1")
r_offline <- time_r("main")
Sys.unsetenv("HF_HUB_OFFLINE")
py_online <- time_python(c(sha, "main"))
py_offline <- time_python("main", offline = TRUE)

rows <- data.frame(
  case = c("pinned commit", "main", "offline"),
  r_ms = 1000 * c(r_pinned$median, r_main$median, r_offline$median),
  python_ms = 1000 * c(py_online$medians[[sha]], py_online$medians[["main"]],
                       py_offline$medians[["main"]]),
  r_requests = c(r_pinned$requests, r_main$requests, r_offline$requests),
  stringsAsFactors = FALSE
)
rows$ratio_r_over_python <- rows$r_ms / rows$python_ms
cat(sprintf("python requests: %d online (pinned + main, %d calls each + 1 warm-up), %d offline\n",
            py_online$requests, n, py_offline$requests))
for (i in seq_len(nrow(rows))) {
  cat(sprintf("%-14s R median %7.3f ms | Python median %7.3f ms | ratio R/Python %5.2f | R requests %d\n",
              rows$case[i], rows$r_ms[i], rows$python_ms[i], rows$ratio_r_over_python[i],
              rows$r_requests[i]))
}
ok <- rows$r_ms[c(1, 3)] <= target_ms & rows$r_requests[c(1, 3)] == 0
cat(sprintf("target (pinned and offline: median <= %g ms from R, 0 requests): %s\n", target_ms,
            if (all(ok)) "met" else "NOT met"))
