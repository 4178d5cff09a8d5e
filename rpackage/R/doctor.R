#' Check the Python that hfbridge uses
#'
#' Prints which Python is used and why, the versions of pybridge and the Hugging Face libraries,
#' whether numpy and reticulate fit together, the cache folder, the endpoint, whether a token
#' is set (never its value), and whether the models extra (torch, transformers) is installed.
#' It starts Python if it is not running yet.
#'
#' @return A list with the same facts, invisibly.
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' hfbridge_doctor()
hfbridge_doctor <- function() {
  reason <- choose_python()
  started <- tryCatch(start_python(), hfbridge_error = function(e) e)
  cat("hfbridge ", as.character(utils::packageVersion("hfbridge")), "\n", sep = "")
  cat("reticulate ", as.character(utils::packageVersion("reticulate")), "\n", sep = "")
  cat("Python chosen because: ", reason, "\n", sep = "")
  if (inherits(started, "hfbridge_error")) {
    cat("Problem: ", conditionMessage(started), "\n", sep = "")
    return(invisible(list(ok = FALSE, reason = reason, problem = conditionMessage(started))))
  }
  info <- py_call("doctor", "report", hf_env())
  numpy_ok <- numpy_fits(package_version(info$versions[[1]]))
  cat("Python: ", info$python, " (", info$python_version, ")\n", sep = "")
  cat("pybridge: ", info$pybridge, "\n", sep = "")
  for (i in seq_along(info$packages)) {
    cat("  ", format(info$packages[[i]], width = 22), info$versions[[i]], "\n", sep = "")
  }
  cat("numpy and reticulate fit together: ", if (numpy_ok) "yes" else "NO (need numpy < 2)", "\n",
      sep = "")
  cat("Cache folder: ", info$cache_dir, "\n", sep = "")
  cat("Endpoint: ", info$endpoint,
      if (isTRUE(info$offline)) " (offline: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)" else "", "\n",
      sep = "")
  if (!isTRUE(info$models)) {
    cat("Models: torch or transformers is missing;",
        "pipelines need install_pybridge(models = TRUE)\n")
  }
  token <- if (isTRUE(info$token_set)) paste0("set (from ", info$token_source, ")") else "not set"
  cat("Token: ", token, "\n", sep = "")
  invisible(c(list(ok = numpy_ok, reason = reason), info))
}
