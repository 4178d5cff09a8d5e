library(testthat)
library(hfbridge)

test_check("hfbridge")
