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
