# space_scaffold() and hub_push_space() against the test mirror (the Dockerfile's checks and the
# read-back with huggingface_hub are in tests/test_space.py).

space_token <- "hf_rSpaceWriteToken012345678"

test_that("space_scaffold writes the app, the sources, a Dockerfile and the Space's YAML", {
  source <- hfbridge:::default_pybridge_source()
  skip_if(!nzchar(source), "hfbridge was not installed from its source tree")
  dir <- file.path(tempfile("space-"), "my-space")
  expect_identical(space_scaffold(dir, title = "My app", source = source), dir)
  expect_true(all(file.exists(file.path(dir, c("Dockerfile", "README.md", "app/app.R",
                                               "app/corpus.txt", "hfbridge/pyproject.toml",
                                               "hfbridge/rpackage/DESCRIPTION")))))
  expect_false(dir.exists(file.path(dir, "hfbridge/rpackage/tests")))
  readme <- readLines(file.path(dir, "README.md"), encoding = "UTF-8")
  expect_true(all(c("sdk: docker", "app_port: 7860", "title: \"My app\"") %in% readme))
  expect_error(space_scaffold(dir, source = source), class = "hfbridge_error_invalid_argument")
  expect_error(space_scaffold(tempfile(), app = tempdir(), source = source),
               class = "hfbridge_error_invalid_argument")
  expect_error(space_scaffold(tempfile(), source = tempdir()),
               class = "hfbridge_error_invalid_argument")
})

test_that("hub_push_space creates a docker Space on the mirror and uploads the folder", {
  source <- hfbridge:::default_pybridge_source()
  skip_if(!nzchar(source), "hfbridge was not installed from its source tree")
  local_hub()
  mirror_config(list(write = list("spaces/rspace/*" = list(space_token))))
  dir <- space_scaffold(tempfile("space-"), source = source)
  expect_error(hub_push_space(dir, "rspace/app"), class = "hfbridge_error_auth")
  withr::local_envvar(HF_TOKEN = space_token)
  res <- hub_push_space(dir, "rspace/app", quiet = TRUE)
  expect_match(res$commit_oid, "^[0-9a-f]{40}$")
  expect_identical(res$url, paste0(Sys.getenv("HF_ENDPOINT"), "/spaces/rspace/app"))
  files <- hub_list_files("rspace/app", repo_type = "space")
  expect_true(all(c("Dockerfile", "README.md", "app/app.R") %in% files))
  expect_error(hub_push_space(tempdir(), "rspace/app"), class = "hfbridge_error_invalid_argument")
})
