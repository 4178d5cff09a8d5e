# The Hugging Face variables as R sees them now. Sys.setenv() after Python has started does not
# reach os.environ, so every call that touches the Hub passes these on (CONTRIBUTING.md). The same
# names as pybridge.settings.ENV_NAMES (a test checks it); docs/environment.md says what each does.
hf_env_names <- c(
  "HF_HOME", "XDG_CACHE_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE",
  "HUGGINGFACE_ASSETS_CACHE", "HF_ENDPOINT",
  "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH",
  "HF_HUB_DISABLE_IMPLICIT_TOKEN", "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT",
  "HF_HUB_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_SYMLINKS", "HF_HUB_DISABLE_XET",
  "HF_HUB_DISABLE_SHARED_BLOBS", "HF_HUB_DISABLE_TELEMETRY", "DISABLE_TELEMETRY", "DO_NOT_TRACK",
  # proxies and CAs (pybridge.settings.NETWORK_NAMES)
  "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
  "no_proxy", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"
)

# An empty lower-case proxy variable is passed on: as in Python, it unsets the upper-case one.
hf_env <- function() {
  values <- Sys.getenv(hf_env_names, unset = NA_character_)
  keep <- !is.na(values) & (nzchar(values) | grepl("^[a-z]+_proxy$", names(values)))
  values <- values[keep]
  check_env_utf8(values)
  as.list(values)
}

# A variable whose value is not UTF-8 (latin1 bytes, say) cannot reach Python: reticulate would
# crash converting it. Its value is never shown: it may be a token.
check_env_utf8 <- function(values) {
  bad <- names(values)[!validUTF8(values)]
  if (length(bad)) {
    hfbridge_abort("invalid_argument", sprintf(paste(
      "The environment variable %s is not valid UTF-8 text (its value is not shown). Set it",
      "again with UTF-8 text, e.g. Sys.setenv(%s = iconv(value, \"latin1\", \"UTF-8\"))."),
      bad[1], bad[1]), argument = bad[1])
  }
}
