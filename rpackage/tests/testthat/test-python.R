test_that("library(hfbridge) starts no Python", {
  out <- callr::r(function() {
    library(hfbridge)
    reticulate::py_available(initialize = FALSE)
  })
  expect_false(out)
})

test_that("numpy 2 under reticulate < 1.38 is refused", {
  expect_false(hfbridge:::numpy_fits(package_version("2.0.1"), package_version("1.28")))
  expect_true(hfbridge:::numpy_fits(package_version("1.26.4"), package_version("1.28")))
  expect_true(hfbridge:::numpy_fits(package_version("2.0.1"), package_version("1.38")))
})

test_that("a Python started by hfbridge gets the library path R inherited and imports ssl", {
  python <- Sys.getenv("RETICULATE_PYTHON", reticulate::py_config()$python)
  res <- processx::run(python, c("-c", "import ssl, os; print(os.environ.get('LD_LIBRARY_PATH'))"),
                       env = hfbridge:::child_python_env(), error_on_status = FALSE)
  expect_identical(res$status, 0L)
  prefix <- hfbridge:::r_library_path_prefix()
  if (nzchar(prefix)) expect_false(startsWith(trimws(res$stdout), prefix))
})

test_that("R's own library folders are removed from the front, as often as R added them", {
  strip <- function(path) hfbridge:::inherited_library_path(path, prefix = "/r/lib:/usr/lib/x")
  expect_identical(strip("/r/lib:/usr/lib/x"), NA_character_)
  expect_identical(strip("/r/lib:/usr/lib/x:/opt/a"), "/opt/a")
  expect_identical(strip("/r/lib:/usr/lib/x:/r/lib:/usr/lib/x:/opt/a:/b"), "/opt/a:/b")
  expect_identical(strip("/opt/a:/r/lib:/usr/lib/x"), "/opt/a:/r/lib:/usr/lib/x")
  expect_identical(strip(NA_character_), NA_character_)
})

test_that("a failing pip says which step failed and quotes pip, not the Python version", {
  src <- withr::local_tempdir()
  writeLines("[project", file.path(src, "pyproject.toml"))  # pip cannot read it
  venv <- file.path(withr::local_tempdir(), "venv")
  python <- Sys.getenv("RETICULATE_PYTHON", reticulate::py_config()$python)
  shown <- utils::capture.output(err <- tryCatch(
    install_pybridge(source = src, envname = venv, python = python, models = FALSE),
    error = function(e) e))
  expect_s3_class(err, "hfbridge_error_python_environment")
  expect_true(file.exists(file.path(venv, "bin", "python")))  # the venv step worked
  expect_match(conditionMessage(err), "Installing pybridge into .* with pip failed \\(exit status")
  last <- utils::tail(shown[nzchar(trimws(shown))], 1)  # pip's last line, as it was shown
  expect_true(grepl(last, conditionMessage(err), fixed = TRUE))
  expect_false(grepl("Python >= 3.9", conditionMessage(err), fixed = TRUE))
})

test_that("the models extra is asked for in the form pip takes for each source", {
  req <- hfbridge:::pybridge_requirement
  src <- withr::local_tempdir()
  expect_identical(req(src, TRUE), paste0(normalizePath(src), "[models]"))
  expect_identical(req(src, FALSE), normalizePath(src))
  expect_identical(req("pybridge==0.1.0", TRUE), "pybridge[models]==0.1.0")
  expect_identical(req("git+https://example.org/hfbridge.git", TRUE),
                   "pybridge[models] @ git+https://example.org/hfbridge.git")
  expect_error(req("pybridge[test]", TRUE), class = "hfbridge_error_invalid_argument")
})

test_that("hfbridge_doctor() names the offline variable in use and finds the models extra", {
  withr::local_envvar(TRANSFORMERS_OFFLINE = "1", HF_HUB_OFFLINE = NA)
  out <- utils::capture.output(info <- hfbridge_doctor())
  expect_true(info$offline)
  expect_true(any(grepl("offline: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE", out, fixed = TRUE)))
  expect_true(info$models)  # this Python has torch and transformers
  expect_false(any(grepl("^Models:", out)))
})
