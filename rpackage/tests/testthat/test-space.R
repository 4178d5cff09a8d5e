# space_scaffold() and hub_push_space() against the test mirror (the Dockerfile's checks and the
# read-back with huggingface_hub are in tests/test_space.py).

space_token <- "hf_rSpaceWriteToken012345678"

space_files <- c("Dockerfile", "README.md", "app/app.R", "app/corpus.txt",
                 "hfbridge/pyproject.toml", "hfbridge/pybridge/__init__.py",
                 "hfbridge/pybridge/mirror/__init__.py", "hfbridge/rpackage/DESCRIPTION",
                 "hfbridge/rpackage/NAMESPACE", "hfbridge/rpackage/R/space.R",
                 "hfbridge/rpackage/src/init.c", "hfbridge/rpackage/man/space_scaffold.Rd",
                 "hfbridge/rpackage/inst/python/pybridge/hub.py",
                 "hfbridge/rpackage/inst/apps/hfbridge-demo/app.R")

test_that("space_scaffold writes the app, the installed package's sources, a Dockerfile, YAML", {
  dir <- file.path(tempfile("space-"), "my-space")
  expect_identical(space_scaffold(dir, title = "My app"), dir)
  expect_true(all(file.exists(file.path(dir, space_files))))
  expect_false(dir.exists(file.path(dir, "hfbridge/rpackage/tests")))
  files <- list.files(dir, recursive = TRUE, all.files = TRUE)
  expect_false(any(grepl("__pycache__|\\.(pyc|o|so)$", files)))
  expect_identical(  # pybridge as this package carries it, byte for byte
    unname(tools::md5sum(file.path(dir, "hfbridge/pybridge/hub.py"))),
    unname(tools::md5sum(system.file("python", "pybridge", "hub.py", package = "hfbridge"))))
  readme <- readLines(file.path(dir, "README.md"), encoding = "UTF-8")
  expect_true(all(c("sdk: docker", "app_port: 7860", "title: \"My app\"") %in% readme))
  expect_error(space_scaffold(dir), class = "hfbridge_error_invalid_argument")
  expect_error(space_scaffold(tempfile(), app = tempdir()),
               class = "hfbridge_error_invalid_argument")
  expect_error(space_scaffold(tempfile(), source = tempdir()),
               class = "hfbridge_error_invalid_argument")
  expect_error(space_scaffold(tempfile(), source = NA_character_),
               class = "hfbridge_error_invalid_argument")
})

test_that("space_scaffold takes a source tree too, and writes the same files from it", {
  repo <- Sys.getenv("HFBRIDGE_REPO")
  skip_if(!nzchar(repo), "HFBRIDGE_REPO (the checkout, set by make test) is not set")
  dir <- space_scaffold(tempfile("space-"), source = repo)
  expect_true(all(file.exists(file.path(dir, space_files))))
  expect_false(dir.exists(file.path(dir, "hfbridge/rpackage/inst/source")))
  expect_identical(unname(tools::md5sum(file.path(dir, "hfbridge/pyproject.toml"))),
                   unname(tools::md5sum(file.path(repo, "pyproject.toml"))))
})

test_that("hub_push_space creates a docker Space on the mirror and uploads the folder", {
  local_hub()
  mirror_config(list(write = list("spaces/rspace/*" = list(space_token))))
  dir <- space_scaffold(tempfile("space-"))
  expect_error(hub_push_space(dir, "rspace/app"), class = "hfbridge_error_auth")
  withr::local_envvar(HF_TOKEN = space_token)
  res <- hub_push_space(dir, "rspace/app", quiet = TRUE)
  expect_match(res$commit_oid, "^[0-9a-f]{40}$")
  expect_identical(res$url, paste0(Sys.getenv("HF_ENDPOINT"), "/spaces/rspace/app"))
  files <- hub_list_files("rspace/app", repo_type = "space")
  expect_true(all(c("Dockerfile", "README.md", "app/app.R") %in% files))
  expect_error(hub_push_space(tempdir(), "rspace/app"), class = "hfbridge_error_invalid_argument")
})
