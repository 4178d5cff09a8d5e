# Hugging Face Spaces: a Docker Space folder for a Shiny app on hfbridge, and its push through
# the publish verbs (hub_create_repo with space_sdk = "docker", hub_upload_folder).

# Debian packages the Space's image installs: what R, hfbridge and the app need at run time
# (every one is in the project's tools/apt-packages.txt).
space_apt_packages <- c(
  "r-base-core", "r-base-dev", "r-cran-reticulate", "r-cran-jsonlite", "r-cran-cli",
  "r-cran-rlang", "r-cran-processx", "r-cran-callr", "r-cran-r6", "r-cran-shiny",
  "r-cran-promises", "r-cran-later", "python3", "python3-venv"
)
space_port <- 7860L

#' Write a Hugging Face Space for a Shiny app
#'
#' Writes a Docker Space into `dir`: the app (in `app/`), the sources of hfbridge and pybridge
#' (in `hfbridge/`: by default the copies this installed package carries), a `Dockerfile` that installs R from Debian, pybridge with its pinned Python
#' stack (torch from PyTorch's CPU index) and hfbridge, and runs the app on port 7860 as the
#' user with UID 1000 (the Spaces rule), and a `README.md` with the Space's YAML header
#' (`sdk: docker`, `app_port: 7860`, title, emoji, colours). Push it with [hub_push_space()].
#'
#' @param dir The folder to write (created; it must be empty or absent unless `overwrite`).
#' @param app A Shiny app folder (with `app.R`); by default the example app of
#'   [run_example_app()].
#' @param title,emoji,color_from,color_to The Space's card.
#' @param source `NULL` (the default) for the sources this installed hfbridge carries: its R
#'   code, and pybridge with the `pyproject.toml` that pins its stack. Or an hfbridge source tree
#'   (with `pyproject.toml`, `pybridge/`, `rpackage/`), for example a checkout with changes.
#' @param overwrite If `TRUE`, files in `dir` are replaced.
#' @return `dir`, invisibly.
#' @family apps
#' @export
#' @examples
#' dir <- file.path(tempdir(), "my-space")
#' space_scaffold(dir, title = "Sentiment in R", overwrite = TRUE)
#' list.files(dir)
space_scaffold <- function(dir, app = example_app_dir(), title = "hfbridge Shiny app",
                           emoji = "\U0001F917", color_from = "blue", color_to = "green",
                           source = NULL, overwrite = FALSE) {
  check_string(dir, "dir")
  check_string(app, "app")
  for (arg in c("title", "emoji", "color_from", "color_to")) check_string(get(arg), arg)
  check_flag(overwrite, "overwrite")
  if (!file.exists(file.path(app, "app.R"))) {
    hfbridge_abort("invalid_argument", sprintf("`app` must be a folder with app.R; %s has none.",
                                               app), argument = "app", path = app)
  }
  if (!is.null(source)) check_source_tree(source)
  if (dir.exists(dir) && length(list.files(dir, all.files = TRUE, no.. = TRUE)) && !overwrite) {
    hfbridge_abort("invalid_argument", sprintf(
      "%s is not empty: choose a new folder or pass overwrite = TRUE.", dir), argument = "dir",
      path = dir)
  }
  if (!dir.create(dir, recursive = TRUE, showWarnings = FALSE) && !dir.exists(dir)) {
    hfbridge_abort("invalid_argument", sprintf(
      "The folder %s cannot be made (a name too long, a file in the way, no permission).",
      describe_value(dir)), argument = "dir")
  }
  space_copy(app, file.path(dir, "app"))
  space_copy_sources(source, file.path(dir, "hfbridge"))
  writeLines(space_dockerfile(space_python_pins(file.path(dir, "hfbridge", "pyproject.toml"))),
             file.path(dir, "Dockerfile"), useBytes = TRUE)
  writeLines(enc2utf8(space_readme(title, emoji, color_from, color_to)),
             file.path(dir, "README.md"), useBytes = TRUE)
  invisible(dir)
}

#' Create a Docker Space on the Hub and upload a folder to it
#'
#' Creates the Space `repo_id` with `space_sdk = "docker"` (an existing Space is kept) and
#' uploads `dir`, for example one written by [space_scaffold()], in one commit, with the
#' publish verbs [hub_create_repo()] and [hub_upload_folder()]. Needs a token with write access.
#'
#' @param dir The Space's folder.
#' @param repo_id The Space, `"user/name"`.
#' @param private If `TRUE`, the Space is private.
#' @inheritParams hub_upload_folder
#' @return The commit, as [hub_upload_folder()] returns it, with `url`, the Space's address.
#' @family apps
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' dir <- file.path(tempdir(), "my-space")
#' space_scaffold(dir, overwrite = TRUE)
#' res <- hub_push_space(dir, "me/my-r-shiny-app", quiet = TRUE)
#' res$url
hub_push_space <- function(dir, repo_id, private = FALSE,
                           commit_message = "Upload the Shiny app", token = NULL,
                           quiet = FALSE) {
  check_string(dir, "dir")
  if (!file.exists(file.path(dir, "Dockerfile"))) {
    hfbridge_abort("invalid_argument", sprintf(
      "%s has no Dockerfile: write the Space with space_scaffold() first.", dir),
      argument = "dir", path = dir)
  }
  made <- hub_create_repo(repo_id, repo_type = "space", private = private, exist_ok = TRUE,
                          space_sdk = "docker", token = token)
  res <- hub_upload_folder(dir, repo_id, repo_type = "space", commit_message = commit_message,
                           ignore_patterns = c("**/__pycache__/**", "*.pyc"), token = token,
                           quiet = quiet)
  res$url <- made$url
  res
}

# ---- the files ------------------------------------------------------------------------------

space_copy <- function(from, to, skip = NULL) {
  files <- list.files(from, recursive = TRUE, all.files = TRUE, no.. = TRUE)
  files <- files[!grepl("(^|/)(__pycache__|\\.git)(/|$)|\\.(pyc|o|so|dll)$", files)]  # no builds
  if (!is.null(skip)) files <- files[!grepl(skip, files)]
  for (f in files) {
    dir.create(dirname(file.path(to, f)), recursive = TRUE, showWarnings = FALSE)
    file.copy(file.path(from, f), file.path(to, f), overwrite = TRUE)
  }
  invisible(to)
}

# What the image installs, as in a checkout: pyproject.toml, pybridge/ and rpackage/. From the
# installed package: inst/python (pybridge) and inst/source (DESCRIPTION, NAMESPACE, R/, src/,
# man/), which R CMD build made from links to the one copy in the repo, and the other folders of
# inst/, which the installed package holds at its top level.
space_inst_folders <- c("apps", "batchtools", "python")

check_source_tree <- function(source) {
  check_string(source, "source")
  if (!file.exists(file.path(source, "pyproject.toml")) ||
      !dir.exists(file.path(source, "rpackage"))) {
    hfbridge_abort("invalid_argument", paste(
      "`source` must be an hfbridge source tree (pyproject.toml, pybridge/, rpackage/), or NULL",
      "for the sources this installed hfbridge carries."), argument = "source", path = source)
  }
}

space_copy_sources <- function(source, to) {
  if (!is.null(source)) {
    space_copy(file.path(source, "pybridge"), file.path(to, "pybridge"))
    space_copy(file.path(source, "rpackage"), file.path(to, "rpackage"),
               skip = "^(tests|inst/source)(/|$)")
    file.copy(file.path(source, "pyproject.toml"), to, overwrite = TRUE)
    return(invisible(to))
  }
  installed <- function(...) system.file(..., package = "hfbridge", mustWork = TRUE)
  space_copy(installed("python"), to)
  space_copy(installed("source"), file.path(to, "rpackage"))
  for (folder in space_inst_folders) {
    space_copy(installed(folder), file.path(to, "rpackage", "inst", folder))
  }
  invisible(to)
}

# The exact torch pin of pyproject.toml: the Dockerfile installs it first, from the CPU index.
space_python_pins <- function(pyproject) {
  lines <- readLines(pyproject, warn = FALSE)
  pins <- regmatches(lines, regexpr("^\\s*\"torch==[^\"]+\"", lines))
  if (length(pins) != 1L) {
    hfbridge_abort("invalid_file", "pyproject.toml pins no exact torch version.",
                   path = pyproject)
  }
  list(torch = gsub("^\\s*\"|\"$", "", pins))
}

space_dockerfile <- function(pins) {
  apt <- paste(space_apt_packages, collapse = " \\\n      ")
  c(
    "# A Docker Space for a Shiny app on hfbridge, written by hfbridge::space_scaffold().",
    "# R and its packages come from Debian 12, pybridge and its pinned Python stack from",
    "# hfbridge/pyproject.toml (torch from PyTorch's CPU index), hfbridge from hfbridge/rpackage.",
    "FROM debian:12",
    "ENV DEBIAN_FRONTEND=noninteractive",
    "RUN apt-get update \\",
    paste0("  && apt-get install -y --no-install-recommends \\\n      ", apt, " \\"),
    "  && rm -rf /var/lib/apt/lists/*",
    "COPY hfbridge /opt/hfbridge",
    "RUN python3 -m venv /opt/venv \\",
    sprintf(paste("  && /opt/venv/bin/pip install --no-cache-dir",
                  "--index-url https://download.pytorch.org/whl/cpu %s \\"), pins$torch),
    "  && /opt/venv/bin/pip install --no-cache-dir --no-build-isolation /opt/hfbridge",
    "RUN R CMD INSTALL --no-multiarch /opt/hfbridge/rpackage",
    "RUN useradd -m -u 1000 user",
    "USER 1000",
    "ENV HOME=/home/user RETICULATE_PYTHON=/opt/venv/bin/python \\",
    "    HF_HOME=/home/user/.cache/huggingface HF_HUB_DISABLE_TELEMETRY=1",
    "WORKDIR /home/user/app",
    "COPY --chown=1000 app /home/user/app",
    sprintf("EXPOSE %d", space_port),
    sprintf(paste0("CMD [\"Rscript\", \"-e\", \"shiny::runApp('/home/user/app', ",
                   "host = '0.0.0.0', port = %d)\"]"), space_port)
  )
}

space_readme <- function(title, emoji, color_from, color_to) {
  yaml_string <- function(x) sprintf("\"%s\"", gsub("([\"\\\\])", "\\\\\\1", x))
  c("---",
    paste("title:", yaml_string(title)),
    paste("emoji:", emoji),
    paste("colorFrom:", color_from),
    paste("colorTo:", color_to),
    "sdk: docker",
    sprintf("app_port: %d", space_port),
    "pinned: false",
    "---",
    "",
    paste("#", title),
    "",
    "An R Shiny app on hfbridge: Hugging Face models from R, through the Python libraries.",
    "The models are read from huggingface.co at start-up; set `HFBRIDGE_SENTIMENT_MODEL`,",
    "`HFBRIDGE_EMBED_MODEL` and `HFBRIDGE_WORKERS` in the Space's variables to change them.")
}
