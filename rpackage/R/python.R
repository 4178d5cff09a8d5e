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
      sprintf("The Python at %s does not have the pybridge package.", reticulate::py_config()$python),
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
    error = function(e) python_environment_error(
      sprintf("Importing pybridge.%s failed: %s", name, conditionMessage(e)),
      "Reinstall pybridge with install_pybridge(), or check the Python named by RETICULATE_PYTHON."
    )
  )
  .hfb$modules[[name]] <- mod
  mod
}

#' Install pybridge and its Python libraries into a virtualenv
#'
#' Creates a virtualenv (by default at [pybridge_venv_path()]) and installs pybridge with the pinned
#' Hugging Face stack: huggingface_hub, tokenizers, safetensors, transformers, numpy < 2 and the
#' CPU build of torch. hfbridge uses this virtualenv whenever `RETICULATE_PYTHON` is not set.
#' Call it in a fresh R session, before anything has started Python.
#'
#' @param source Where to install pybridge from: a source folder holding `pyproject.toml`, or a pip
#'   requirement. By default the folder recorded when hfbridge was installed from its source tree.
#' @param envname The virtualenv folder.
#' @param python The Python used to create the virtualenv.
#' @param editable Install a source folder in editable mode.
#' @return The path of the virtualenv's Python, invisibly.
#' @export
#' @examples
#' \dontrun{
#' install_pybridge()
#' }
install_pybridge <- function(source = default_pybridge_source(), envname = pybridge_venv_path(),
                             python = Sys.which("python3"), editable = TRUE) {
  if (!nzchar(source)) {
    hfbridge_abort("invalid_argument", "No pybridge source is known: pass `source`, a folder holding pyproject.toml.")
  }
  dir.create(dirname(envname), recursive = TRUE, showWarnings = FALSE)
  run <- function(cmd, args) {
    status <- system2(cmd, args)
    if (status != 0) {
      python_environment_error(
        sprintf("`%s %s` failed with status %d.", cmd, paste(args, collapse = " "), status),
        "Read the output above; a Python >= 3.9 with the venv module is needed."
      )
    }
  }
  if (!file.exists(venv_python(envname))) run(python, c("-m", "venv", shQuote(envname)))
  pip <- c("-m", "pip", "install")
  target <- if (dir.exists(source) && editable) c("-e", shQuote(source)) else shQuote(source)
  run(venv_python(envname), c(pip, target))
  invisible(venv_python(envname))
}

default_pybridge_source <- function() {
  recorded <- system.file("pybridge_source", package = "hfbridge")
  if (nzchar(recorded)) {
    path <- readLines(recorded, warn = FALSE)[1]
    if (file.exists(file.path(path, "pyproject.toml"))) return(path)
  }
  ""
}
