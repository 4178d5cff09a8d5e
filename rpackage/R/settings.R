# HF_* variables as R sees them now. Sys.setenv() after Python has started does not reach
# os.environ, so every call that touches the Hub passes these on (DESIGN.md).
hf_env_names <- c(
  "HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_TOKEN",
  "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_DISABLE_IMPLICIT_TOKEN", "XDG_CACHE_HOME"
)

hf_env <- function() {
  values <- Sys.getenv(hf_env_names, unset = NA_character_)
  as.list(values[!is.na(values) & nzchar(values)])
}
