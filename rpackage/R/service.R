# A Python service in a background process (the mirror, the inference server): never Python in
# R. Started with the library path R inherited (child_python_env()), it prints one ready line
# with its URL to stdout and logs to a file; R waits for that line, and stops the process with
# SIGTERM, then a kill. processx's cleanup stops it when the handle is collected or R exits.

# The Python that runs a service: RETICULATE_PYTHON, the hfbridge venv, or reticulate's pick.
service_python <- function() {
  configured <- Sys.getenv("RETICULATE_PYTHON")
  if (nzchar(configured)) return(configured)
  venv <- venv_python(pybridge_venv_path())
  if (file.exists(venv)) return(venv)
  found <- tryCatch(reticulate::py_exe(), error = function(e) NULL)
  if (is.null(found) || !nzchar(found)) {
    python_environment_error(
      "No Python was found to run the mirror or the server.",
      "Set RETICULATE_PYTHON to a Python that has pybridge, or run install_pybridge()."
    )
  }
  found
}

# Starts `python args`; returns list(process, url) once the ready line (`pattern`, whose first
# group is the URL) is printed. `input` (a secret such as an API key) goes to the child's stdin,
# never its command line or its environment. The child inherits R's environment through
# env = "current" and /usr/bin/env sets the library path R inherited: processx keeps an `env`
# it was given in the process object, and the handle must not carry HF_TOKEN when serialized.
service_start <- function(python, args, what, pattern, timeout, log, input = NULL) {
  if (!file.exists(python)) {
    python_environment_error(
      sprintf("The Python meant to run the %s does not exist: %s", what, python),
      "Set RETICULATE_PYTHON to a Python that has pybridge, or run install_pybridge()."
    )
  }
  # processx's supervisor stops the child even if R is killed. The help examples' demo Hub
  # (examples_ready()) is started without it: it lives across examples, which must not leave the
  # supervisor's connections open; cleanup still stops it when R exits.
  process <- processx::process$new(
    "/usr/bin/env", c(library_path_setting(), python, args), stdout = "|", stderr = log,
    stdin = if (!is.null(input)) "|", cleanup = TRUE, supervise = !isTRUE(.hfb$unsupervised),
    env = c("current", PYTHONUNBUFFERED = "1")
  )
  if (!is.null(input)) {
    process$write_input(paste0(input, "\n"))
    close(process$get_input_connection())
  }
  list(process = process, url = wait_for_ready_line(process, timeout, log, what, pattern))
}

# /usr/bin/env's arguments that give the child the library path R inherited (child_python_env()).
library_path_setting <- function() {
  variable <- library_path_variable()
  inherited <- inherited_library_path(Sys.getenv(variable, unset = NA_character_))
  if (is.na(inherited)) c("-u", variable) else paste0(variable, "=", inherited)
}

# Stops a server or mirror this session started. One read back with readRDS() holds no live
# process: the session that started it owns it, and stopping it from here would silently do
# nothing.
service_stop <- function(process, timeout, what) {
  if (service_restored(process)) {
    hfbridge_abort("invalid_argument", sprintf(paste(
      "This %s was started by another R session (it was read back with readRDS()): only that",
      "session can stop it, and it stops when that session ends."), what), argument = what)
  }
  if (process$is_alive()) {
    process$signal(tools::SIGTERM)
    process$wait(as.integer(timeout * 1000))
    if (process$is_alive()) process$kill()
  }
  invisible(process)
}

# A process handle read back with readRDS(): processx keeps no pid for it.
service_restored <- function(process) is.na(process$get_pid())

# The status line of a server or mirror handle.
service_status <- function(process) {
  if (service_restored(process)) return("started by another R session (unknown here)")
  if (process$is_alive()) sprintf("running (pid %d)", process$get_pid()) else "stopped"
}

wait_for_ready_line <- function(process, timeout, log, what, pattern) {
  deadline <- Sys.time() + timeout
  while (Sys.time() < deadline) {
    process$poll_io(200L)
    lines <- process$read_output_lines()
    hit <- grep(pattern, lines, value = TRUE)
    if (length(hit)) return(sub(pattern, "\\1", hit[1]))
    service_refused(lines, log, what)
    if (!process$is_alive()) service_died(process, log, what)
  }
  process$kill()
  hfbridge_abort("network", sprintf("The %s did not answer within %s seconds. Its log: %s",
                                    what, timeout, log), path = log)
}

# "hfbridge serve failed: CODE MESSAGE", the line a service prints when it cannot start.
service_refused <- function(lines, log, what) {
  failed <- "^hfbridge \\S+ failed: ([a-z_]+) (.*)$"
  hit <- grep(failed, lines, value = TRUE)
  if (!length(hit)) return(invisible())
  hfbridge_abort(sub(failed, "\\1", hit[1]),
                 sprintf("The %s could not start: %s (its log: %s)", what,
                         sub(failed, "\\2", hit[1]), log), path = log)
}

service_died <- function(process, log, what) {
  service_refused(process$read_all_output_lines(), log, what)
  lines <- if (file.exists(log)) utils::tail(readLines(log, warn = FALSE), 20) else character()
  text <- paste(lines, collapse = "\n")
  if (grepl("No module named|ModuleNotFoundError|ImportError", text)) {
    python_environment_error(
      sprintf("The %s could not start: a Python package is missing.\n%s", what, text),
      "Set RETICULATE_PYTHON to a Python that has pybridge, or run install_pybridge()."
    )
  }
  hfbridge_abort("network", sprintf("The %s exited with status %s before serving:\n%s",
                                    what, process$get_exit_status(), text), path = log)
}

# A host name or address to listen on: letters, digits, '.', '-', ':' (IPv6), at most 253.
check_host <- function(host) {
  check_string(host, "host")
  if (!grepl("^[A-Za-z0-9.:_-]{1,253}$", host)) {
    hfbridge_abort("invalid_argument", sprintf(
      "`host` must be a host name or address such as \"127.0.0.1\", not %s.",
      describe_value(host)), argument = "host")
  }
  host
}

# The log file of a server: a path in a folder that exists.
check_log <- function(log) {
  check_string(log, "log")
  log <- path.expand(log)
  if (dir.exists(log) || !dir.exists(dirname(log))) {
    hfbridge_abort("invalid_argument", sprintf(
      "`log` must be a file in a folder that exists, not %s.", describe_value(log)),
      argument = "log")
  }
  log
}

check_port <- function(port) {
  ok <- is.numeric(port) && length(port) == 1 && !is.na(port) && port == round(port) &&
    port >= 0 && port <= 65535
  if (!ok) hfbridge_abort("invalid_argument", "`port` must be a whole number from 0 to 65535.")
  as.integer(port)
}
