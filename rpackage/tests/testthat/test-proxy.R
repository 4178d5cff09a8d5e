# Proxies and CAs set with Sys.setenv() in a running session (helper-proxy.R): a real forward
# proxy that logs every request (tinyproxy), servers on this machine's non-loopback address, and
# the mirror over HTTPS with a certificate from a throwaway CA. tests/test_proxy.py checks the
# routes against httpx2's own reading of the variables.

proxy_repo <- function() hub_test_repo("rproxy/tiny")

same_file <- function(path, source) {
  expect_identical(readBin(path, "raw", 1e6), readBin(source, "raw", 1e6))
}

test_that("a proxy set with Sys.setenv() mid-session is used by the next call, then dropped", {
  local_hub()
  local_no_network_settings()
  src <- proxy_repo()
  mirror <- lan_mirror()
  proxy <- proxy_start()
  Sys.setenv(HF_ENDPOINT = mirror$url)
  same_file(hub_download("rproxy/tiny", "config.json"), file.path(src, "config.json"))
  expect_length(proxy_requests(proxy), 0L)

  Sys.setenv(http_proxy = proxy$url, no_proxy = "")
  # the proxy keeps Content-Length on HEAD answers, or huggingface_hub would write an empty file
  same_file(hub_download("rproxy/tiny", "weights.bin"), file.path(src, "weights.bin"))
  url <- paste0(mirror$url, "/rproxy/tiny/resolve/main/weights.bin")
  expect_identical(proxy_requests(proxy), paste(c("HEAD", "GET"), url))

  Sys.unsetenv("http_proxy")
  same_file(hub_download("rproxy/tiny", "vocab.txt"), file.path(src, "vocab.txt"))
  expect_length(proxy_requests(proxy), 2L)
})

test_that("no_proxy is honoured, and an empty http_proxy unsets HTTP_PROXY", {
  local_hub()
  local_no_network_settings()
  src <- proxy_repo()
  mirror <- lan_mirror()
  proxy <- proxy_start()
  Sys.setenv(HF_ENDPOINT = mirror$url, HTTP_PROXY = proxy$url, NO_PROXY = lan_address())
  same_file(hub_download("rproxy/tiny", "config.json"), file.path(src, "config.json"))
  expect_true("config.json" %in% hub_list_files("rproxy/tiny"))
  Sys.setenv(NO_PROXY = "", http_proxy = "")
  same_file(hub_download("rproxy/tiny", "vocab.txt"), file.path(src, "vocab.txt"))
  expect_length(proxy_requests(proxy), 0L)
  Sys.unsetenv("http_proxy")
  same_file(hub_download("rproxy/tiny", "sub/extra.json"), file.path(src, "sub", "extra.json"))
  expect_length(proxy_requests(proxy), 2L)
})

test_that("a refused proxy is a network error that names it without its credentials", {
  local_hub()
  local_no_network_settings()
  proxy_repo()
  mirror <- lan_mirror()
  port <- refused_port()
  secret <- "s3cret-Pa55word"
  label <- sprintf("http://%s:%d", lan_address(), port)
  Sys.setenv(HF_ENDPOINT = mirror$url,
             http_proxy = sprintf("http://hfuser:%s@%s:%d", secret, lan_address(), port))
  err <- expect_error(hub_repo_info("rproxy/tiny"), class = "hfbridge_error_network")
  expect_match(conditionMessage(err), paste0("through the proxy ", label, " (from http_proxy)"),
               fixed = TRUE)
  expect_identical(err$proxy, label)
  fields <- unlist(unclass(err)[setdiff(names(err), "call")])
  shown <- paste(c(fields, capture.output(print(err))), collapse = "\n")
  expect_false(grepl(secret, shown, fixed = TRUE))
  expect_false(grepl("hfuser:", shown, fixed = TRUE))
})

test_that("an unknown CA is a tls error naming SSL_CERT_FILE; once set, the next call works", {
  local_hub()
  local_no_network_settings()
  src <- proxy_repo()
  tls <- tls_mirror()
  Sys.setenv(HF_ENDPOINT = tls$url)
  err <- expect_error(hub_repo_info("rproxy/tiny"), class = "hfbridge_error_tls")
  expect_match(conditionMessage(err), "set SSL_CERT_FILE", fixed = TRUE)
  expect_identical(err$variable, "SSL_CERT_FILE")
  Sys.setenv(SSL_CERT_FILE = tls$ca)
  same_file(hub_download("rproxy/tiny", "config.json"), file.path(src, "config.json"))
})

test_that("https goes through the proxy's CONNECT tunnel", {
  local_hub()
  local_no_network_settings()
  src <- proxy_repo()
  tls <- tls_mirror()
  proxy <- proxy_start()
  Sys.setenv(HF_ENDPOINT = tls$url, SSL_CERT_FILE = tls$ca, https_proxy = proxy$url)
  same_file(hub_download("rproxy/tiny", "weights.bin"), file.path(src, "weights.bin"))
  expect_identical(unique(proxy_requests(proxy)), paste("CONNECT", sub("^https://", "", tls$url)))
})

test_that("hf_inference() and hf_chat() go through the proxy too", {
  local_no_network_settings()
  srv <- lan_fault_server()
  proxy <- proxy_start()
  generate <- function() {
    out <- hf_inference("text-generation", "x", endpoint = srv$url)
    attr(out, "latency_ms") <- NULL
    out
  }
  direct <- generate()
  expect_length(proxy_requests(proxy), 0L)
  made_before <- hf_chat("fault-model", endpoint = paste0(srv$url, "/v1"))
  Sys.setenv(http_proxy = proxy$url)
  expect_identical(generate(), direct)
  reply <- hf_chat("fault-model", endpoint = paste0(srv$url, "/v1"))$chat("hi")
  expect_identical(as.character(unclass(reply)), "hello from the fault server")
  # a chat made before the proxy was set follows it too: the variables are read at each call
  expect_identical(as.character(unclass(made_before$chat("hi"))), "hello from the fault server")
  expect_identical(proxy_requests(proxy),
                   paste("POST", paste0(srv$url, c("/", rep("/v1/chat/completions", 2)))))
  Sys.unsetenv("http_proxy")
  made_before$chat("hi again")
  expect_length(proxy_requests(proxy), 3L)
})

test_that("pip in install_pybridge() sees the proxy set in R", {
  local_no_network_settings()
  python <- hfbridge:::service_python()
  skip_if_not(file.exists(python), "no Python to run")
  Sys.setenv(https_proxy = "http://proxy.example:3128", no_proxy = "")
  code <- "import urllib.request; print('proxies:', urllib.request.getproxies().get('https'))"
  res <- hfbridge:::run_child_python(python, c("-c", code), "Reading the proxies", "")
  expect_match(res$stdout, "proxies: http://proxy.example:3128", fixed = TRUE)
})
