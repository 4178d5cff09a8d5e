# Small repos for the hub tests, written by R (no Python needed to build them).

hub_test_folder <- function() {
  dir <- tempfile("hub-test-repo-")
  dir.create(file.path(dir, "sub"), recursive = TRUE)
  writeLines('{"model_type": "tiny", "n": 3}', file.path(dir, "config.json"))
  writeLines('{"version": "1.0"}', file.path(dir, "tokenizer.json"))
  writeLines(c("a", "b", "c"), file.path(dir, "vocab.txt"))
  writeBin(as.raw(rep(0:255, 40)), file.path(dir, "weights.bin"))
  writeLines("{}", file.path(dir, "sub", "extra.json"))
  dir
}

# Publishes the tiny repo once per run under repo_id and returns the source folder.
hub_test_repo <- function(repo_id = "rhubtest/tiny") {
  key <- paste0("published:", repo_id)
  if (is.null(.test_hub[[key]])) {
    folder <- hub_test_folder()
    publish_repo(repo_id, folder)
    .test_hub[[key]] <- folder
  }
  .test_hub[[key]]
}

# A git repo in the store: tag v1 has config n = 1; main has n = 2 and new.txt.
hub_test_git_repo <- function(repo_id = "rhubtest/versions") {
  folder <- file.path(test_hub_store(), "models", repo_id)
  if (dir.exists(file.path(folder, ".git"))) return(folder)
  dir.create(folder, recursive = TRUE, showWarnings = FALSE)
  git <- function(...) {
    out <- system2("git", c("-C", shQuote(folder), "-c", "user.name=t", "-c", "user.email=t@t",
                            ...), stdout = TRUE, stderr = TRUE)
    invisible(out)
  }
  git("init", "-q", "-b", "main")
  writeLines('{"n": 1}', file.path(folder, "config.json"))
  git("add", ".")
  git("commit", "-q", "-m", "one")
  git("tag", "v1")
  writeLines('{"n": 2}', file.path(folder, "config.json"))
  writeLines("new", file.path(folder, "new.txt"))
  git("add", ".")
  git("commit", "-q", "-m", "two")
  folder
}

# Runs Python code in a fresh process with the given environment added; returns its stdout
# lines. The environment is the one hfbridge gives every Python it starts.
hub_test_python <- function(code, env = character()) {
  python <- Sys.getenv("RETICULATE_PYTHON", reticulate::py_config()$python)
  res <- processx::run(python, c("-c", code), env = hfbridge:::child_python_env(env),
                       error_on_status = FALSE)
  if (res$status != 0) stop("Python failed: ", res$stderr)
  strsplit(trimws(res$stdout), "\n", fixed = TRUE)[[1]]
}

hub_mirror_requests <- function(reset = FALSE) {
  hub_mirror_stats(test_hub_mirror(), reset = reset)
}

# The requests about one repository since the last reset (the mirror is the whole run's, and a
# process another test left behind may still ask it for something else).
hub_mirror_repo_requests <- function(repo_id, reset = FALSE) {
  paths <- hub_mirror_requests(reset = reset)$by_path
  as.integer(sum(unlist(paths[grepl(repo_id, names(paths), fixed = TRUE)]), 0L))
}
