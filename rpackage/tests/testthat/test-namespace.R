# library(hfbridge) must not mask what R attaches by default: a user's embed() or any other base
# function keeps meaning what it meant before (issue #10, defect 4).

r_default_functions <- function() {
  packages <- c("stats", "utils", "graphics", "methods", "grDevices")
  unique(c(ls(baseenv(), all.names = TRUE), unlist(lapply(packages, getNamespaceExports))))
}

test_that("no export of hfbridge masks a function of base, stats, utils, graphics, ...", {
  expect_identical(intersect(getNamespaceExports("hfbridge"), r_default_functions()),
                   character(0))
})

test_that("library(hfbridge) prints no masking message", {
  messages <- callr::r(function() {
    for (p in c("stats", "utils", "graphics", "methods", "grDevices")) {
      library(p, character.only = TRUE)
    }
    said <- character(0)
    withCallingHandlers(library(hfbridge), message = function(m) {
      said <<- c(said, conditionMessage(m))
      invokeRestart("muffleMessage")
    })
    said
  })
  expect_false(any(grepl("masked", messages)))
  expect_identical(messages, character(0))
})
