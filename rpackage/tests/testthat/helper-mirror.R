# One local Hub mirror for the whole test run, over a temporary store, and a fresh HF cache for
# each test that calls local_hub(). The mirror is a Python subprocess (hub_mirror_start()): R
# does not start Python for it.
#
# - local_hub: HF_ENDPOINT to the mirror, HF_HOME to a fresh temp dir, for the calling test;
# - publish_repo: copies a folder into the store as a repo (repo id, folder);
# - mirror_config: writes mirror.json (gated or private repos, tokens, faults) for this test.
#
# The store is shared by the run: use repo ids unique to your test file.

.test_hub <- new.env(parent = emptyenv())

test_hub_store <- function() {
  if (is.null(.test_hub$root)) {
    .test_hub$root <- file.path(tempfile("hfbridge-test-hub-"), "store")
    dir.create(.test_hub$root, recursive = TRUE)
  }
  .test_hub$root
}

test_hub_mirror <- function() {
  mirror <- .test_hub$mirror
  if (!is.null(mirror) && mirror$process$is_alive()) return(mirror)
  mirror <- hub_mirror_start(test_hub_store())
  .test_hub$mirror <- mirror
  stop_it <- function(...) if (mirror$process$is_alive()) hub_mirror_stop(mirror)
  reg.finalizer(.test_hub, stop_it, onexit = TRUE)
  tryCatch(withr::defer(stop_it(), envir = testthat::teardown_env()), error = function(e) NULL)
  mirror
}

local_hub <- function(env = parent.frame()) {
  mirror <- test_hub_mirror()
  home <- tempfile("hf-home-")
  dir.create(home)
  withr::defer(unlink(home, recursive = TRUE), envir = env)
  withr::local_envvar(
    HF_ENDPOINT = mirror$url, HF_HOME = home, HF_HUB_DISABLE_TELEMETRY = "1",
    HF_TOKEN = NA, HUGGING_FACE_HUB_TOKEN = NA, HF_HUB_OFFLINE = NA, HF_HUB_CACHE = NA,
    HF_TOKEN_PATH = NA, HF_HUB_DISABLE_IMPLICIT_TOKEN = NA, HUGGINGFACE_HUB_CACHE = NA,
    TRANSFORMERS_OFFLINE = NA,
    .local_envir = env
  )
  invisible(mirror$url)
}

publish_repo <- function(repo_id, folder, repo_type = "model") {
  hub_mirror_publish(test_hub_store(), repo_id, folder, repo_type = repo_type)
}

# Writes mirror.json (gated, private, tokens, faults) and removes it when the test ends.
mirror_config <- function(config, env = parent.frame()) {
  path <- file.path(test_hub_store(), "mirror.json")
  jsonlite::write_json(config, path, auto_unbox = TRUE)
  withr::defer(unlink(path), envir = env)
  invisible(path)
}
