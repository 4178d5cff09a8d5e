# An OpenAI-compatible server that misbehaves on command: tests/fault_server.py of the checkout
# (found through HFBRIDGE_REPO, since R CMD check runs the tests from the built package), in a
# background process, for the tests of remote chat and inference.
#
# - fault_server_start(): a fresh server for the calling test, stopped when it ends;
# - fault_script(server, actions): replaces the queue of actions, a list of lists such as a
#   status 429 with retry_after 1, then a drop after 2 chunks (kinds: tests/fault_server.py);
# - fault_requests(server): every API request since it started, each a list of method, path,
#   headers (lowercased names) and body (parsed JSON, or NULL);
# - fault_curl(server, route, body): one request with curl; list(status, exit, headers, body).
#
# Requests go through the curl command (tools/apt-packages.txt has no R HTTP client that POSTs).

fault_server_start <- function(env = parent.frame()) {
  repo <- Sys.getenv("HFBRIDGE_REPO")
  testthat::skip_if(!nzchar(repo), "HFBRIDGE_REPO (the checkout, set by make test) is not set")
  script <- file.path(repo, "tests", "fault_server.py")
  testthat::skip_if_not(file.exists(script), paste("no fault server at", script))
  testthat::skip_if(!nzchar(Sys.which("curl")), "the curl command is not installed")
  python <- tryCatch(hfbridge:::service_python(), error = function(e) "")
  testthat::skip_if(!nzchar(python) || !file.exists(python), "no Python to run the fault server")
  log <- tempfile("fault-server-", fileext = ".log")
  started <- hfbridge:::service_start(python, c(script, "--port", "0"), "fault server",
                                      "^fault server ready at (http://\\S+)\\s*$", 60, log)
  withr::defer(hfbridge:::service_stop(started$process, 5), envir = env)
  list(url = started$url, process = started$process, log = log)
}

fault_script <- function(server, actions) {
  body <- jsonlite::toJSON(list(actions = actions), auto_unbox = TRUE, null = "null", digits = NA)
  answer <- fault_curl(server, "/_script", body)
  if (!identical(answer$status, 200L)) stop("The fault server refused the script: ", answer$body)
  invisible(server)
}

fault_requests <- function(server) {
  answer <- fault_curl(server, "/_requests")
  jsonlite::fromJSON(answer$body, simplifyVector = FALSE)
}

# `body` (a JSON string) makes it a POST. A dropped connection shows in `exit` (curl's status:
# 18 for a body cut short, 52 for no answer at all), with what did arrive in `body`.
fault_curl <- function(server, route, body = NULL) {
  head <- tempfile()
  out <- tempfile()
  on.exit(unlink(c(head, out)))
  args <- c("-sS", "-N", "-D", head, "-o", out, "-w", "%{http_code}", "--max-time", "60")
  if (!is.null(body)) {
    args <- c(args, "-H", "Content-Type: application/json", "--data-binary", as.character(body))
  }
  res <- processx::run("curl", c(args, paste0(server$url, route)), error_on_status = FALSE)
  text <- if (file.exists(out)) readChar(out, file.size(out), useBytes = TRUE) else ""
  list(status = as.integer(res$stdout), exit = res$status, headers = fault_headers(head),
       body = if (length(text)) text else "")
}

fault_headers <- function(path) {
  lines <- if (file.exists(path)) readLines(path, warn = FALSE) else character()
  lines <- grep(":", sub("\r$", "", lines), value = TRUE, fixed = TRUE)
  headers <- as.list(trimws(sub("^[^:]*:", "", lines)))
  names(headers) <- tolower(trimws(sub(":.*$", "", lines)))
  headers
}
