# A logging forward proxy and servers on this machine's non-loopback address, for the proxy and CA
# tests (clients may bypass a proxy for loopback):
#
# - lan_address(): the first non-loopback IPv4 address that `hostname -I` lists, or a skip;
# - proxy_start(lines): tinyproxy on it, with its own config and log, for the calling test;
#   `$url`, `$log`; `lines` are extra config lines (BasicAuth ...);
# - proxy_requests(proxy): "METHOD target" of every request the proxy was asked to forward;
# - refused_port(): a port on that address where nothing listens;
# - lan_mirror(): a Hub mirror on that address over the shared test store (one per run);
# - tls_mirror(): tests/tls_mirror.py of the checkout: the mirror over HTTPS on that address,
#   with a certificate from a throwaway CA; `$url`, `$ca` (the CA file);
# - lan_fault_server(): tests/fault_server.py on that address; `$url`.

lan_address <- function() {
  out <- tryCatch(suppressWarnings(system2("hostname", "-I", stdout = TRUE, stderr = FALSE)),
                  error = function(e) character())
  found <- grep("^[0-9.]+$", strsplit(paste(out, collapse = " "), "\\s+")[[1]], value = TRUE)
  found <- found[!startsWith(found, "127.")]
  testthat::skip_if(length(found) == 0L, paste(
    "no non-loopback IPv4 address (hostname -I): clients may bypass a proxy for loopback,",
    "so the proxy tests need one"
  ))
  found[[1]]
}

proxy_start <- function(lines = character(), env = parent.frame()) {
  testthat::skip_if(!nzchar(Sys.which("tinyproxy")),
                    "tinyproxy is not installed (tools/apt-packages.txt)")
  address <- lan_address()
  dir <- tempfile("tinyproxy-")
  dir.create(dir)
  log <- file.path(dir, "tinyproxy.log")
  config <- file.path(dir, "tinyproxy.conf")
  for (attempt in 1:5) {  # a random port may be taken: tinyproxy then exits
    port <- sample(20000:60000, 1L)
    unlink(log)
    writeLines(c(paste("Port", port), paste("Listen", address), sprintf('LogFile "%s"', log),
                 "LogLevel Info", "MaxClients 20", "Timeout 60", lines), config)
    process <- processx::process$new("tinyproxy", c("-d", "-c", config), cleanup = TRUE)
    if (wait_for_log(process, log, "Accepting connections")) break
    process$kill()
  }
  if (!process$is_alive()) stop("tinyproxy did not start: ", paste(read_log(log), collapse = "\n"))
  withr::defer(service_stop_quietly(process), envir = env)
  list(url = sprintf("http://%s:%d", address, port), log = log, process = process)
}

wait_for_log <- function(process, log, text, timeout = 20) {
  deadline <- Sys.time() + timeout
  while (Sys.time() < deadline && process$is_alive()) {
    if (any(grepl(text, read_log(log), fixed = TRUE))) return(TRUE)
    Sys.sleep(0.05)
  }
  FALSE
}

read_log <- function(log) if (file.exists(log)) readLines(log, warn = FALSE) else character()

proxy_requests <- function(proxy) {
  lines <- read_log(proxy$log)
  pattern <- "Request \\(file descriptor [0-9]+\\): (\\S+ \\S+).*$"
  sub(paste0("^.*", pattern), "\\1", grep(pattern, lines, value = TRUE))
}

service_stop_quietly <- function(process) {
  if (process$is_alive()) hfbridge:::service_stop(process, 5)
}

refused_port <- function() {
  address <- lan_address()
  repeat {
    port <- sample(20000:60000, 1L)
    open <- tryCatch({
      close(socketConnection(address, port, open = "r", timeout = 2))
      TRUE
    }, error = function(e) FALSE, warning = function(w) FALSE)
    if (!open) return(port)
  }
}

lan_mirror <- function() {
  mirror <- .test_hub$lan_mirror
  if (!is.null(mirror) && mirror$process$is_alive()) return(mirror)
  mirror <- hub_mirror_start(test_hub_store(), host = lan_address())
  .test_hub$lan_mirror <- mirror
  tryCatch(withr::defer(service_stop_quietly(mirror$process), envir = testthat::teardown_env()),
           error = function(e) NULL)
  mirror
}

checkout_script <- function(name) {
  repo <- Sys.getenv("HFBRIDGE_REPO")
  testthat::skip_if(!nzchar(repo), "HFBRIDGE_REPO (the checkout, set by make test) is not set")
  script <- file.path(repo, "tests", name)
  testthat::skip_if_not(file.exists(script), paste("no", script))
  script
}

lan_service <- function(script, args, what, pattern, env) {
  python <- tryCatch(hfbridge:::service_python(), error = function(e) "")
  testthat::skip_if(!nzchar(python) || !file.exists(python), paste("no Python to run the", what))
  log <- tempfile(paste0(gsub(" ", "-", what), "-"), fileext = ".log")
  started <- hfbridge:::service_start(python, c(script, args), what, pattern, 60, log)
  withr::defer(service_stop_quietly(started$process), envir = env)
  started
}

tls_mirror <- function(env = parent.frame()) {
  testthat::skip_if(!nzchar(Sys.which("openssl")),
                    "the openssl command is not installed (tools/apt-packages.txt)")
  certs <- tempfile("tls-mirror-certs-")
  args <- c("--root", test_hub_store(), "--certs", certs, "--host", lan_address())
  started <- lan_service(checkout_script("tls_mirror.py"), args, "tls mirror",
                         "^tls mirror ready at (https://\\S+)\\s*$", env)
  list(url = started$url, ca = file.path(certs, "ca.pem"))
}

lan_fault_server <- function(env = parent.frame()) {
  started <- lan_service(checkout_script("fault_server.py"), c("--host", lan_address()),
                         "fault server", "^fault server ready at (http://\\S+)\\s*$", env)
  list(url = started$url)
}

# Every proxy and CA variable unset for the calling test; Sys.setenv() in the test is undone too.
# Afterwards the shared HTTP session follows R's restored settings again, so that a later test
# calling huggingface_hub directly does not go through a proxy that has stopped.
local_no_network_settings <- function(env = parent.frame()) {
  withr::defer(sync_network_settings(), envir = env)  # runs after the variables are restored
  names <- c("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
             "no_proxy", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
             "CURL_CA_BUNDLE")
  withr::local_envvar(stats::setNames(rep(NA_character_, length(names)), names),
                      .local_envir = env)
}

sync_network_settings <- function() {
  if (!reticulate::py_available(initialize = FALSE)) return(invisible())
  network <- reticulate::import("pybridge.settings")$resolve(hfbridge:::hf_env())$network
  reticulate::import("pybridge.hub_call")$follow_network(network)
}
