# hub_upload_folder() from R against HfApi.upload_folder in Python, rounds interleaved, one
# mirror. Each round uploads the same folder to a fresh repo (removed afterwards), so both
# sides send every byte. R is timed around the hub_upload_folder() call (hf_env(), the checks,
# the reticulate round trip included); Python around upload_folder() in its own process, with
# Xet off as pybridge turns it off for any Hub other than huggingface.co.
args <- commandArgs(trailingOnly = TRUE)
rounds <- if (length(args) >= 1) as.integer(args[[1]]) else 3L
total_mb <- if (length(args) >= 2) as.integer(args[[2]]) else 500L
suppressPackageStartupMessages(library(hfbridge))

python <- Sys.getenv("RETICULATE_PYTHON")
run_python <- function(args, env = character()) {
  res <- processx::run(python, args, env = c("current", LD_LIBRARY_PATH = "", env))
  res$stdout
}

folder <- tempfile("upload-bench-folder-")
invisible(run_python(c("bench/upload/make_folder.py", folder, as.character(total_mb))))
files <- list.files(folder, recursive = TRUE, full.names = TRUE)
cat(sprintf("upload bench: %d files, %.0f MB (largest %.0f MB), %d rounds\n", length(files),
            sum(file.size(files)) / 2^20, max(file.size(files)) / 2^20, rounds))

store <- tempfile("upload-bench-store-")
dir.create(store)
token <- "hf_uploadBenchWriteToken0001"
jsonlite::write_json(list(write = list(token)), file.path(store, "mirror.json"),
                     auto_unbox = TRUE)
mirror <- hub_mirror_start(store)
on.exit({
  hub_mirror_stop(mirror)
  unlink(c(folder, store), recursive = TRUE)
}, add = TRUE)
Sys.setenv(HF_ENDPOINT = mirror$url, HF_HOME = tempfile("upload-bench-home-"), HF_TOKEN = token)

drop_repo <- function(repo) unlink(file.path(store, "models", repo), recursive = TRUE)

# Warm up: Python started, huggingface_hub imported, one small upload.
warm <- tempfile("warm-")
dir.create(warm)
writeLines("x", file.path(warm, "x.txt"))
invisible(hub_create_repo("bench/warm", exist_ok = TRUE))
invisible(hub_upload_folder(warm, "bench/warm", quiet = TRUE))

upload_r <- function(i) {
  repo <- sprintf("bench/r-%d", i)
  invisible(hub_create_repo(repo))
  t0 <- Sys.time()
  res <- hub_upload_folder(folder, repo, commit_message = "bench", quiet = TRUE)
  seconds <- as.numeric(Sys.time() - t0, units = "secs")
  stopifnot(identical(hub_repo_info(repo)$sha, res$commit_oid))
  drop_repo(repo)
  seconds
}

upload_python <- function(i) {
  repo <- sprintf("bench/py-%d", i)
  out <- run_python(c("bench/upload/py_upload.py", mirror$url, token, folder, repo),
                    env = c(HF_HUB_DISABLE_XET = "1"))
  drop_repo(repo)
  jsonlite::fromJSON(utils::tail(strsplit(out, "\n")[[1]], 1))$seconds
}

# Rounds alternate which side goes first, so that drift on a shared machine hits both.
r_times <- py_times <- numeric(rounds)
for (i in seq_len(rounds)) {
  if (i %% 2 == 1) {
    r_times[i] <- upload_r(i)
    py_times[i] <- upload_python(i)
  } else {
    py_times[i] <- upload_python(i)
    r_times[i] <- upload_r(i)
  }
  cat(sprintf("  round %d: R %.2f s, Python %.2f s, ratio %.3f\n", i, r_times[i], py_times[i],
              r_times[i] / py_times[i]))
}
r_med <- stats::median(r_times)
py_med <- stats::median(py_times)
cat(sprintf("median: R hub_upload_folder %.2f s, Python HfApi.upload_folder %.2f s\n", r_med,
            py_med))
cat(sprintf("ratio R / Python: %.3f of the medians, %.3f median of the rounds (target <= 1.10)\n",
            r_med / py_med, stats::median(r_times / py_times)))
