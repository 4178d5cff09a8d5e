# Finding and starting the Python that holds pybridge. Nothing runs at library() time.

#' Where hfbridge keeps its own virtualenv
#'
#' `install_pybridge()` creates it; hfbridge uses it when `RETICULATE_PYTHON` is not set.
#' Set `HFBRIDGE_VENV` to put it elsewhere.
#'
#' @return The path of the virtualenv folder, as a string.
#' @export
#' @examples
#' pybridge_venv_path()
pybridge_venv_path <- function() {
  path <- Sys.getenv("HFBRIDGE_VENV")
  if (nzchar(path)) return(path)
  file.path(tools::R_user_dir("hfbridge", "data"), "venv")
}

venv_python <- function(venv) file.path(venv, "bin", "python")

# ---- the environment of a Python started as a child process ------------------------------------

# R's start-up script (R_HOME/etc/ldpaths) exports LD_LIBRARY_PATH as R's own library folders
# (R_LD_LIBRARY_PATH, which it does not export) followed by the path R inherited. Those folders
# include /usr/lib/<arch>, where a system libpython may live: a Python with a shared libpython of
# its own (pyenv's, for one) started with them loads the wrong libpython, and `import ssl` fails.
# reticulate is unaffected (it opens libpython by its full path); a child process is not. So
# every Python hfbridge starts (pip, the mirror, helpers) runs with the path R inherited.

# The variable ldpaths sets: DYLD_FALLBACK_LIBRARY_PATH on macOS, LD_LIBRARY_PATH elsewhere.
library_path_variable <- function() {
  darwin <- identical(Sys.info()[["sysname"]], "Darwin")
  if (darwin) "DYLD_FALLBACK_LIBRARY_PATH" else "LD_LIBRARY_PATH"
}

# What ldpaths puts in front of the inherited path: R_HOME/etc/ldpaths run again in a shell with
# the variable unset. R's environment still holds what ldpaths read (JAVA_HOME and friends are
# only defaults there), so the result is the prefix this R added. "" where there is no ldpaths.
r_library_path_prefix <- function() {
  if (!is.null(.hfb$r_library_prefix)) return(.hfb$r_library_prefix)
  ldpaths <- paste0(R.home(), "/etc", Sys.getenv("R_ARCH"), "/ldpaths")
  prefix <- ""
  if (.Platform$OS.type == "unix" && file.exists(ldpaths)) {
    variable <- library_path_variable()
    script <- sprintf('unset %s; . "$1"; printf %%s "$%s"', variable, variable)
    res <- tryCatch(
      processx::run("/bin/sh", c("-c", script, "sh", ldpaths), error_on_status = FALSE,
                    env = current_env()),
      error = function(e) NULL
    )
    if (!is.null(res) && res$status == 0) prefix <- res$stdout
  }
  .hfb$r_library_prefix <- prefix
  prefix
}

# The library path R inherited: `path` without R's prefix, removed as often as R was started
# from R (R CMD check, callr, Rscript from R each add it once more). NA when nothing is left.
inherited_library_path <- function(path, prefix = r_library_path_prefix()) {
  if (is.na(path) || !nzchar(prefix)) return(path)
  repeat {
    if (identical(path, prefix)) return(NA_character_)
    if (!startsWith(path, paste0(prefix, ":"))) return(path)
    path <- substring(path, nchar(prefix) + 2L)
  }
}

current_env <- function() {
  env <- Sys.getenv()
  values <- as.character(env)
  names(values) <- names(env)
  values
}

# The whole environment, as a named character vector for processx, for a Python child process:
# R's environment with the library path R inherited, and the variables in `...` added.
child_python_env <- function(...) {
  env <- current_env()
  variable <- library_path_variable()
  inherited <- inherited_library_path(Sys.getenv(variable, unset = NA_character_))
  env <- env[names(env) != variable]
  if (!is.na(inherited)) env[[variable]] <- inherited
  extra <- c(...)
  env[names(extra)] <- extra
  env
}

# Picks a Python once per session and remembers why (hfbridge_doctor() prints it).
choose_python <- function() {
  if (!is.null(.hfb$python_reason)) return(invisible(.hfb$python_reason))
  reason <- if (reticulate::py_available(initialize = FALSE)) {
    "Python was already started in this R session"
  } else if (nzchar(Sys.getenv("RETICULATE_PYTHON"))) {
    reticulate::use_python(Sys.getenv("RETICULATE_PYTHON"), required = TRUE)
    "RETICULATE_PYTHON is set"
  } else if (file.exists(venv_python(pybridge_venv_path()))) {
    reticulate::use_python(venv_python(pybridge_venv_path()), required = TRUE)
    sprintf("the hfbridge virtualenv exists at %s", pybridge_venv_path())
  } else {
    "reticulate's default discovery (no RETICULATE_PYTHON, no hfbridge virtualenv)"
  }
  .hfb$python_reason <- reason
  invisible(reason)
}

python_environment_error <- function(problem, fix) {
  hfbridge_abort(
    "python_environment",
    paste0(problem, "\n", fix,
           "\nRun hfbridge_doctor() to see which Python is used and why.")
  )
}

# Starts Python and checks that numpy, reticulate and pybridge fit together.
start_python <- function() {
  if (isTRUE(.hfb$python_ok)) return(invisible(TRUE))
  choose_python()
  ok <- tryCatch(reticulate::py_available(initialize = TRUE), error = function(e) FALSE)
  if (!ok) {
    python_environment_error(
      "No usable Python was found.",
      "Install one with install_pybridge(), or set RETICULATE_PYTHON to a Python that has pybridge."
    )
  }
  check_numpy()
  if (!reticulate::py_module_available("pybridge")) {
    python_environment_error(
      sprintf("The Python at %s does not have the pybridge package.",
              reticulate::py_config()$python),
      "Run install_pybridge(), or `pip install -e .` from the hfbridge source in that Python."
    )
  }
  .hfb$python_ok <- TRUE
  invisible(TRUE)
}

numpy_fits <- function(numpy_version, reticulate_version = utils::packageVersion("reticulate")) {
  numpy_version < "2" || reticulate_version >= "1.38"
}

check_numpy <- function() {
  if (!reticulate::py_module_available("numpy")) {
    python_environment_error(
      "numpy is missing from the Python in use.",
      "Install it with pip install 'numpy<2', or run install_pybridge()."
    )
  }
  version <- package_version(reticulate::py_eval("__import__('numpy').__version__"))
  if (!numpy_fits(version)) {
    python_environment_error(
      sprintf("numpy %s sits under reticulate %s, which cannot convert numpy 2 arrays.",
              version, utils::packageVersion("reticulate")),
      "Install numpy<2 in that Python (pip install 'numpy<2'), or reticulate >= 1.38."
    )
  }
}

# The pybridge.<name> module, imported once.
pybridge_module <- function(name) {
  mod <- .hfb$modules[[name]]
  if (!is.null(mod)) return(mod)
  start_python()
  mod <- tryCatch(
    reticulate::import(paste0("pybridge.", name)),
    error = function(e) {
      python_environment_error(
        sprintf("Importing pybridge.%s failed: %s", name, conditionMessage(e)),
        paste("Reinstall pybridge with install_pybridge(), or check the Python named by",
              "RETICULATE_PYTHON.")
      )
    }
  )
  .hfb$modules[[name]] <- mod
  mod
}

#' Install pybridge and its Python libraries into a virtualenv
#'
#' Creates a virtualenv (by default at [pybridge_venv_path()]) and installs pybridge with the pinned
#' Hugging Face stack: huggingface_hub, tokenizers, safetensors and numpy < 2, and with
#' `models = TRUE` also transformers and the CPU build of torch (pybridge's `models` extra), which
#' pipelines, embeddings and hidden states need. The Hub verbs, tokenizers and safetensors work
#' without them. hfbridge uses this virtualenv whenever `RETICULATE_PYTHON` is not set. Call it in
#' a fresh R session, before anything has started Python.
#'
#' pip's output is shown as it runs; if a step fails, the error (class
#' `hfbridge_error_python_environment`) names the command and quotes pip's last lines.
#'
#' @param source Where to install pybridge from: a source folder holding `pyproject.toml`, or a pip
#'   requirement. By default the copy of pybridge (with the `pyproject.toml` that pins its stack)
#'   that the installed hfbridge package carries, so the Python side always matches the R side.
#' @param envname The virtualenv folder.
#' @param python The Python used to create the virtualenv.
#' @param editable Install a source folder in editable mode (for developers working in a
#'   checkout). Otherwise the folder is copied and installed, and pip writes nothing into it.
#' @param models Also install transformers and torch (the `models` extra). `FALSE` gives a much
#'   smaller install for the Hub, tokenizers and safetensors.
#' @return The path of the virtualenv's Python, invisibly.
#' @export
#' @examples
#' # Not run here: these install Python packages from PyPI into a virtualenv.
#' \dontrun{
#' install_pybridge()                 # everything
#' install_pybridge(models = FALSE)   # Hub, tokenizers and safetensors only: no torch
#' }
install_pybridge <- function(source = default_pybridge_source(), envname = pybridge_venv_path(),
                             python = Sys.which("python3"), editable = FALSE, models = TRUE) {
  check_string(source, "source")
  check_flags(editable = editable, models = models)
  dir.create(dirname(envname), recursive = TRUE, showWarnings = FALSE)
  if (!file.exists(venv_python(envname))) {
    run_child_python(python, c("-m", "venv", envname),
                     sprintf("Creating the virtualenv %s with %s", envname, python),
                     "A Python >= 3.9 with the venv module is needed: pass it as `python`.")
  }
  if (dir.exists(source) && !editable) {
    source <- copy_python_source(source)
    on.exit(unlink(source, recursive = TRUE), add = TRUE)
  }
  requirement <- pybridge_requirement(source, models)
  target <- if (dir.exists(source) && editable) c("-e", requirement) else requirement
  run_child_python(venv_python(envname), c("-m", "pip", "install", target),
                   sprintf("Installing pybridge into %s with pip", envname),
                   paste("Fix what pip reports above (network, proxy, disk space), then run",
                         "install_pybridge() again."))
  invisible(venv_python(envname))
}

# pybridge, with the models extra if asked, in the form pip takes for each kind of source:
# "/folder[models]", "pybridge[models] @ git+https://...", "pybridge[models]==0.1.0".
pybridge_requirement <- function(source, models) {
  if (file.exists(source)) source <- normalizePath(source)
  if (!models) return(source)
  if (grepl("[", source, fixed = TRUE)) {
    hfbridge_abort("invalid_argument",
                   "`source` already names extras: add \"models\" to them, or pass models = FALSE.",
                   argument = "source")
  }
  if (file.exists(source)) return(paste0(source, "[models]"))
  if (grepl("://", source, fixed = TRUE)) return(paste0("pybridge[models] @ ", source))
  sub("^([A-Za-z0-9._-]+)", "\\1[models]", source)
}

# Runs a Python child process (with the library path R inherited, see child_python_env()),
# showing its output live unless `echo = FALSE`; on failure, says which step failed and quotes the output's end.
run_child_python <- function(python, args, what, fix, echo = TRUE) {
  res <- tryCatch(
    processx::run(python, args, env = child_python_env(), echo = echo, stderr_to_stdout = TRUE,
                  error_on_status = FALSE),
    error = function(e) list(status = NA_integer_, stdout = conditionMessage(e))
  )
  if (identical(res$status, 0L)) return(invisible(res))
  lines <- utils::tail(strsplit(res$stdout, "\n", fixed = TRUE)[[1]], 12)
  python_environment_error(
    sprintf("%s failed (%s).\nThe command: %s %s\nIts last lines:\n%s", what,
            if (is.na(res$status)) "it could not be started" else paste("exit status", res$status),
            python, paste(args, collapse = " "), paste(lines, collapse = "\n")),
    fix
  )
}

# The copy of pybridge the installed package carries: inst/python holds links to the repo's
# pybridge/ and pyproject.toml, which R CMD build turns into files.
default_pybridge_source <- function() {
  system.file("python", package = "hfbridge", mustWork = TRUE)
}

# pip builds a folder in place (build/, *.egg-info), so a non-editable install builds a copy of
# what the Python package is made of, never the package library or a checkout.
copy_python_source <- function(source) {
  to <- tempfile("pybridge-source-")
  dir.create(to)
  parts <- file.path(source, c("pyproject.toml", "pybridge"))
  file.copy(parts[file.exists(parts)], to, recursive = TRUE)
  to
}
