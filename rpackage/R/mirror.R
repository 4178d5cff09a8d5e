# The local Hub mirror: python -m pybridge.mirror in a background process (never Python in R).

#' Serve folders as a local Hugging Face Hub
#'
#' `hub_mirror_start()` starts `python -m pybridge.mirror serve` in a background process and
#' returns once it answers. Point hfbridge (and Python's huggingface_hub) at it with
#' `Sys.setenv(HF_ENDPOINT = mirror$url)`: [hub_download()], tokenizers and pipelines then fetch
#' from your folders instead of huggingface.co, through the same cache. Use it on an air-gapped
#' site, for a demo, or in tests.
#'
#' The store folder `root` holds one folder per repository:
#' \itemize{
#'   \item `models/<org>/<name>/` for a model `org/name`, or `models/<name>/` for an id without
#'     an organisation, like `gpt2`;
#'   \item `datasets/<org>/<name>/` and `spaces/<org>/<name>/` for datasets and spaces.
#' }
#' A plain folder is served as revision `"main"`, with a commit id derived from its content.
#' A folder that is a git repository serves every branch, tag and commit as a revision.
#' [hub_mirror_publish()] copies a folder into the store. A file `root/mirror.json` can mark
#' repositories as gated or private with the tokens that may read them, for example
#' `{"gated": {"org/name": ["my-token"]}}`; it is re-read when it changes.
#'
#' The mirror runs in its own Python process (found as described under `python`), binds only
#' to `host`, logs one line per request (method, path, status; never a token) to `log`, and stops
#' with [hub_mirror_stop()], when the returned object is garbage collected, or when R exits.
#'
#' @param root The store folder. Created if missing.
#' @param host The address to bind. The default, `"127.0.0.1"`, accepts local connections only.
#' @param port The port; `0` picks a free one.
#' @param timeout Seconds to wait for the mirror to answer.
#' @param log A file for the request log; by default a temporary file.
#' @param python The Python that runs the mirror. By default `RETICULATE_PYTHON`, else the hfbridge
#'   virtualenv ([pybridge_venv_path()]), else the Python reticulate would pick. Python is not
#'   started in the R session.
#' @return An object of class `hfbridge_mirror`: a list with `url`, `root`, `log`, `python` and
#'   the `process` (a processx process).
#' @seealso [hub_mirror_stop()], [hub_mirror_publish()], [hub_mirror_stats()].
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' # A store with one model, copied from a folder (here a model from the demo Hub)
#' store <- file.path(tempdir(), "my-hub")
#' hub_mirror_publish(store, "me/tiny-model", hub_snapshot("gpt2"))
#' mirror <- hub_mirror_start(store)
#' mirror
#' old <- Sys.getenv("HF_ENDPOINT")
#' Sys.setenv(HF_ENDPOINT = mirror$url)
#' path <- hub_download("me/tiny-model", "config.json")
#' hub_mirror_stats(mirror)$total
#' Sys.setenv(HF_ENDPOINT = old)
#' hub_mirror_stop(mirror)
hub_mirror_start <- function(root, host = "127.0.0.1", port = 0L, timeout = 30,
                             log = tempfile("hfbridge-mirror-", fileext = ".log"),
                             python = service_python()) {
  check_string(root, "root")
  check_host(host)
  port <- check_port(port)
  check_string(python, "python")
  log <- check_log(log)
  root <- normalizePath(root, mustWork = FALSE)
  dir.create(root, recursive = TRUE, showWarnings = FALSE)
  args <- c("-m", "pybridge.mirror", "serve", "--root", root, "--host", host, "--port", port)
  ready <- "^hfbridge mirror serving .* at (http://\\S+)\\s*$"
  started <- service_start(python, args, "mirror", ready, check_seconds(timeout, "timeout"), log)
  process <- started$process
  url <- started$url
  structure(
    list(url = url, root = root, log = log, python = python, process = process),
    class = "hfbridge_mirror"
  )
}

#' Stop a local Hub mirror
#'
#' @param mirror An `hfbridge_mirror` from [hub_mirror_start()].
#' @param timeout Seconds to wait for a clean exit before the process is killed.
#' @return `mirror`, invisibly.
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' mirror <- hub_mirror_start(file.path(tempdir(), "empty-hub"))
#' mirror$process$is_alive()
#' hub_mirror_stop(mirror)
#' mirror$process$is_alive()
hub_mirror_stop <- function(mirror, timeout = 5) {
  mirror_check(mirror)
  service_stop(mirror$process, timeout, "mirror")
  if (!is.null(mirror$previous_env)) restore_env(mirror$previous_env)
  invisible(mirror)
}

#' A local Hub with small demo models
#'
#' `hub_mirror_demo()` builds the demo store and serves it with [hub_mirror_start()], so that
#' hfbridge can be tried, taught and tested with no network and no account. The store holds the
#' real `sentence-transformers/all-MiniLM-L6-v2`, and small models built offline under the ids
#' the documentation uses: `gpt2`, `bert-base-uncased`, `distilbert-base-uncased`,
#' `distilbert/distilbert-base-uncased-finetuned-sst-2-english` (the default sentiment model), a
#' tiny model for every pipeline task under `hfbridge-tiny/`, a chat model
#' (`hfbridge-tiny/chat`), and the datasets `imdb` and `c4` (small samples; also as
#' `stanfordnlp/imdb` and `allenai/c4`). The stand-ins give the real models' tokens and shapes,
#' not their answers.
#'
#' With `use = TRUE`, `HF_ENDPOINT` points at the mirror and `HF_HOME` at a fresh temporary
#' folder, so the stand-ins never enter your own cache. [hub_mirror_stop()] puts both back.
#'
#' The store is built by Python (`python -m pybridge.fixtures.demo`); builds are cached, so a
#' second call takes about a second.
#'
#' @param root The store folder.
#' @param use Point this R session at the mirror (see above).
#' @param ... Passed to [hub_mirror_start()].
#' @return An `hfbridge_mirror`, as from [hub_mirror_start()].
#' @seealso [hub_mirror_start()], [hub_mirror_stop()].
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' demo <- hub_mirror_demo()
#' Sys.getenv("HF_ENDPOINT") == demo$url
#' hub_list_files("gpt2")
#' hub_mirror_stop(demo)
hub_mirror_demo <- function(root = file.path(tempdir(), "hfbridge-demo-store"), use = TRUE, ...) {
  check_string(root, "root")
  check_flag(use, "use")
  python <- service_python()
  run_child_python(python, c("-m", "pybridge.fixtures.demo", root), "Building the demo store",
                   "Run install_pybridge() to give that Python the pybridge package.",
                   echo = FALSE)
  mirror <- hub_mirror_start(root, python = python, ...)
  if (use) {
    mirror$previous_env <- Sys.getenv(demo_env_names, unset = NA)
    home <- tempfile("hfbridge-demo-home-")
    dir.create(home)
    Sys.unsetenv(demo_env_names)
    Sys.setenv(HF_ENDPOINT = mirror$url, HF_HOME = home)
  }
  mirror
}

# What hub_mirror_demo(use = TRUE) changes: the endpoint, and every way to name the cache or to
# turn the network off.
demo_env_names <- c("HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
                    "HF_HUB_OFFLINE")

restore_env <- function(previous) {
  unset <- is.na(previous)
  Sys.unsetenv(names(previous)[unset])
  if (any(!unset)) do.call(Sys.setenv, as.list(previous[!unset]))
}

# For help-page examples (`@examplesIf hfbridge:::examples_ready()`): TRUE when the Python side
# is there, and then this session points at one demo mirror, started on first use. Examples run
# as written where pybridge is installed, and are shown un-run where it is not (as on CRAN).
# The mirror lets the example token (HF_TOKEN while examples run) write the repositories of the
# user "me" (`me/...` models, datasets and spaces), so the publishing examples run as written.
# example_hub_done() puts the session's Hub settings back; a task callback calls it once the
# top-level call that ran the example (R CMD check's, or example()) is over, so an example needs
# no visible clean-up line. A vignette keeps the settings for the whole knit (no callback while
# knitr runs). `packages`: suggested packages the example needs (FALSE, shown un-run, when one
# is missing).
# With HFBRIDGE_EXAMPLES_REQUIRED=true (make test), a missing Python side is an error rather
# than examples and vignettes quietly shown un-run.
examples_ready <- function(packages = character()) {
  if (!all(vapply(packages, requireNamespace, logical(1), quietly = TRUE))) return(FALSE)
  demo <- .hfb$example_hub
  if (is.null(demo) || !demo$process$is_alive()) {
    if (!python_side_available()) {
      if (identical(Sys.getenv("HFBRIDGE_EXAMPLES_REQUIRED"), "true")) {
        stop("HFBRIDGE_EXAMPLES_REQUIRED is set but no Python with pybridge was found ",
             "(RETICULATE_PYTHON is \"", Sys.getenv("RETICULATE_PYTHON"), "\").", call. = FALSE)
      }
      return(FALSE)
    }
    store <- file.path(tempdir(), "hfbridge-example-store")
    .hfb$unsupervised <- TRUE
    demo <- tryCatch(hub_mirror_demo(store, use = FALSE), finally = .hfb$unsupervised <- NULL)
    writeLines(example_mirror_json, file.path(store, "mirror.json"))
    .hfb$example_hub <- demo
  }
  if (is.null(.hfb$example_env)) {
    .hfb$example_env <- Sys.getenv(example_env_names, unset = NA)
    .hfb$example_supervisor <- supervisor_open()
  }
  home <- file.path(tempdir(), "hfbridge-example-home")
  dir.create(home, showWarnings = FALSE)
  Sys.unsetenv(example_env_names)
  Sys.setenv(HF_ENDPOINT = demo$url, HF_HOME = home, HF_TOKEN = example_token)
  if (!isTRUE(getOption("knitr.in.progress")) &&
      !"hfbridge-examples" %in% getTaskCallbackNames()) {
    addTaskCallback(function(...) {
      example_hub_done()
      FALSE  # once
    }, name = "hfbridge-examples")
  }
  TRUE
}

example_token <- "hf_example_token_of_me"
example_env_names <- c(demo_env_names, "HF_TOKEN")
example_mirror_json <- sprintf(paste0(
  '{"write": {"me/*": ["%1$s"], "datasets/me/*": ["%1$s"], "spaces/me/*": ["%1$s"]}, ',
  '"users": {"me": ["%1$s"]}}'), example_token)

example_hub_done <- function() {
  if (!is.null(.hfb$example_env)) restore_env(.hfb$example_env)
  .hfb$example_env <- NULL
  # An example that started a server or a worker started processx's supervisor, whose open
  # connections R CMD check refuses after each example: stop it if the example started it (the
  # processes it supervised are the example's own, stopped by then).
  if (isFALSE(.hfb$example_supervisor) && supervisor_open()) processx::supervisor_kill()
  .hfb$example_supervisor <- NULL
  invisible()
}

supervisor_open <- function() {
  any(grepl("supervisor_std", showConnections()[, "description"], fixed = TRUE))
}

# TRUE when a Python with pybridge can be found, without starting Python in this session.
python_side_available <- function() {
  python <- tryCatch(service_python(), error = function(e) "")
  if (!nzchar(python) || !file.exists(python)) return(FALSE)
  res <- tryCatch(
    processx::run(python, c("-c", "import pybridge"), env = child_python_env(),
                  error_on_status = FALSE),
    error = function(e) list(status = 1L)
  )
  identical(res$status, 0L)
}

#' Publish a folder as a repository of a local Hub mirror
#'
#' Copies `folder` (for example one written by `save_pretrained()`, or a git repository) into
#' the store as `repo_id`, replacing any earlier copy. A running mirror serves it at once.
#'
#' @param mirror An `hfbridge_mirror`, or the path of a store folder.
#' @param repo_id The repository id, `"org/name"` or `"name"`.
#' @param folder The folder to copy.
#' @param repo_type `"model"`, `"dataset"` or `"space"`.
#' @return The path of the repository folder in the store, invisibly.
#' @export
#' @examples
#' src <- file.path(tempdir(), "tiny-src")
#' dir.create(src, showWarnings = FALSE)
#' writeLines('{"model_type": "bert"}', file.path(src, "config.json"))
#' store <- file.path(tempdir(), "hub-store")
#' hub_mirror_publish(store, "me/tiny", src)
#' list.files(store, recursive = TRUE)
hub_mirror_publish <- function(mirror, repo_id, folder, repo_type = "model") {
  root <- if (inherits(mirror, "hfbridge_mirror")) mirror$root else mirror
  check_string(root, "mirror")
  check_string(repo_id, "repo_id")
  repo_type <- check_repo_type(check_string(repo_type, "repo_type", "\"model\""))
  parts <- strsplit(repo_id, "/", fixed = TRUE)[[1]]
  if (!length(parts) %in% 1:2 || any(!nzchar(parts)) || any(parts %in% c(".", "..")) ||
      !grepl("^[A-Za-z0-9._/-]+$", repo_id)) {  # the characters the Hub takes in an id
    hfbridge_abort("invalid_argument",
                   sprintf("`repo_id` must be \"name\" or \"org/name\", not \"%s\".", repo_id),
                   repo_id = repo_id)
  }
  if (!dir.exists(check_string(folder, "folder"))) {
    hfbridge_abort("invalid_argument", sprintf("`folder` is not a folder: %s", folder),
                   path = folder)
  }
  dest <- do.call(file.path, as.list(c(root, paste0(repo_type, "s"), parts)))
  unlink(dest, recursive = TRUE)
  dir.create(dest, recursive = TRUE, showWarnings = FALSE)
  items <- list.files(folder, all.files = TRUE, no.. = TRUE, full.names = TRUE)
  ok <- file.copy(items, dest, recursive = TRUE, copy.date = TRUE)
  if (!all(ok)) {
    hfbridge_abort("invalid_file", sprintf("Could not copy %s into the store.", folder),
                   path = folder)
  }
  invisible(dest)
}

#' Request counts of a running local Hub mirror
#'
#' Reads `GET /_mirror/stats` (with `?reset=true` to reset): how many requests the mirror
#' answered, by method, by `"METHOD /path"` and by status. Handy to see what a call fetched.
#'
#' @param mirror An `hfbridge_mirror` from [hub_mirror_start()].
#' @param reset Set the counts back to zero after reading them.
#' @return A list with `total`, `by_method`, `by_path` and `by_status`.
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' store <- file.path(tempdir(), "stats-hub")
#' hub_mirror_publish(store, "me/tiny-model", hub_snapshot("gpt2"))
#' mirror <- hub_mirror_start(store)
#' old <- Sys.getenv("HF_ENDPOINT")
#' Sys.setenv(HF_ENDPOINT = mirror$url)
#' hub_list_files("me/tiny-model")
#' stats <- hub_mirror_stats(mirror)
#' stats$total
#' names(stats$by_path)
#' Sys.setenv(HF_ENDPOINT = old)
#' hub_mirror_stop(mirror)
hub_mirror_stats <- function(mirror, reset = FALSE) {
  mirror_check(mirror)
  if (!requireNamespace("jsonlite", quietly = TRUE)) {
    hfbridge_abort("unsupported", "hub_mirror_stats() needs the jsonlite package.")
  }
  query <- if (isTRUE(reset)) "?reset=true" else ""
  tryCatch(
    suppressWarnings(jsonlite::fromJSON(paste0(mirror$url, "/_mirror/stats", query),
                                        simplifyVector = FALSE)),
    error = function(e) {
      hfbridge_abort("network", sprintf("The mirror at %s does not answer (%s): is it stopped?",
                                        mirror$url, service_status(mirror$process)))
    })
}

#' @export
print.hfbridge_mirror <- function(x, ...) {
  cat("<hfbridge_mirror>\n")
  cat("  url:    ", x$url, "\n", sep = "")
  cat("  root:   ", x$root, "\n", sep = "")
  cat("  status: ", service_status(x$process), "\n", sep = "")
  cat("  log:    ", x$log, "\n", sep = "")
  invisible(x)
}

mirror_check <- function(mirror) {
  if (!inherits(mirror, "hfbridge_mirror") || !inherits(mirror$process, "process")) {
    hfbridge_abort("invalid_argument", "`mirror` must come from hub_mirror_start().")
  }
}
