# text_to_image() against diffusers itself: the tiny Stable Diffusion pipeline of
# pybridge.fixtures.diffusion_models is published on the test mirror, and each image is compared
# with the PNG that diffusers' own pipeline, called in Python (through reticulate) on the same
# folder with the same prompts, size, steps and seed, saves.

diffusion_fixture <- function() {
  dm <- hfbridge:::pybridge_module("fixtures.diffusion_models")
  folder <- dm$ensure()$sd
  publish_repo(dm$REPO_IDS$sd, folder)
  list(dm = dm, folder = folder, repo = dm$REPO_IDS$sd)
}

local_single_thread <- function(env = parent.frame()) {
  torch <- hfbridge:::pybridge_module("models")$import_torch()
  before <- torch$get_num_threads()
  torch$set_num_threads(1L)
  withr::defer(torch$set_num_threads(before), envir = env)
}

prompts <- c("a photo of a cat sitting on a red sofa", "a small robot reading a book")

test_that("text_to_image() equals the PNGs diffusers saves in Python, and writes the same PNGs", {
  local_hub()
  local_single_thread()
  fx <- diffusion_fixture()
  out <- withr::local_tempdir()
  files <- file.path(out, c("cat.png", "robot.png"))
  imgs <- text_to_image(prompts, fx$repo, seed = 7, steps = 3, width = 64, height = 48,
                        file = files, quiet = TRUE)
  ref <- fx$dm$reference_pngs(fx$folder, as.list(prompts), out, 7L, num_inference_steps = 3L,
                              height = 48L, width = 64L)
  expect_length(imgs, 2L)
  for (i in 1:2) {
    x <- imgs[[i]]
    expect_s3_class(x, "hfbridge_image")
    expect_true(is.array(x))
    expect_identical(dim(x), c(48L, 64L, 3L))
    png <- fx$dm$read_png(ref[[i]])
    expect_lte(max(abs(unclass(x) - png)), 0.5 / 255 + 1e-6)
    expect_identical(fx$dm$read_png(files[i]), png)
    expect_identical(attr(x, "prompt"), prompts[i])
    expect_identical(attr(x, "file"), files[i])
    expect_identical(attr(x, "seed"), 7L)
  }
  expect_gt(sd(unclass(imgs[[1]])), 0.05)
  raster <- as.raster(imgs[[1]])
  expect_identical(dim(raster), c(48L, 64L))
  grDevices::pdf(NULL)
  plot(raster)
  grDevices::dev.off()
  expect_match(format(imgs[[1]]), "48 x 64 pixels", all = FALSE)
})

test_that("one prompt gives one array; n, negative_prompt and the call's own arguments", {
  local_single_thread()
  fx <- diffusion_fixture()
  out <- withr::local_tempdir()
  one <- text_to_image(prompts[1], fx$folder, seed = 3, steps = 2, width = 64, height = 48,
                       quiet = TRUE)
  expect_s3_class(one, "hfbridge_image")
  expect_null(attr(one, "file"))
  two <- text_to_image(prompts[1], fx$folder, seed = 3, steps = 2, width = 64, height = 48,
                       n = 2, negative_prompt = "blurry", guidance_scale = 5, eta = 0.5,
                       quiet = TRUE)
  ref <- fx$dm$reference_pngs(fx$folder, list(prompts[1]), out, 3L, num_inference_steps = 2L,
                              height = 48L, width = 64L, num_images_per_prompt = 2L,
                              negative_prompt = list("blurry"), guidance_scale = 5, eta = 0.5)
  expect_length(two, 2L)
  for (i in 1:2) {
    expect_lte(max(abs(unclass(two[[i]]) - fx$dm$read_png(ref[[i]]))), 0.5 / 255 + 1e-6)
  }
})

test_that("a progress bar shows the steps, and the loaded pipeline is listed and reused", {
  local_single_thread()
  fx <- diffusion_fixture()
  pipeline_cache_clear()
  withr::local_options(cli.progress_show_after = 0, cli.dynamic = FALSE)
  msgs <- testthat::capture_messages(
    text_to_image("a cat", fx$folder, seed = 1, steps = 3, width = 32, height = 32)
  )
  expect_match(msgs, "step 3/3", all = FALSE)
  quiet <- testthat::capture_messages(
    x <- text_to_image("a cat", fx$folder, seed = 1, steps = 3, width = 32, height = 32,
                       quiet = TRUE)
  )
  expect_length(quiet, 0L)
  expect_identical(dim(x), c(32L, 32L, 3L))
  info <- pipeline_cache_info()
  expect_identical(info$kind, "diffusion:text-to-image")
  expect_identical(info$hits, 1L)
})

test_that("bad input is a classed error", {
  fx <- diffusion_fixture()
  expect_error(text_to_image("a cat", fx$folder, height = 50),
               "multiple of 8", class = "hfbridge_error_invalid_argument")
  expect_error(text_to_image("", fx$folder), class = "hfbridge_error_invalid_argument")
  expect_error(text_to_image(NA_character_, fx$folder), class = "hfbridge_error_invalid_argument")
  expect_error(text_to_image(character(0), fx$folder),
               class = "hfbridge_error_invalid_argument")
  expect_error(text_to_image("a cat", fx$folder, steps = 0),
               class = "hfbridge_error_invalid_argument")
  expect_error(text_to_image("a cat", fx$folder, file = c("a.png", "b.png")),
               class = "hfbridge_error_invalid_argument")
  for (bad in list(tempdir(), file.path(tempdir(), "x.jpg"))) {  # refused before any step
    expect_error(text_to_image("a cat", fx$folder, steps = 1, file = bad), "file",
                 class = "hfbridge_error_invalid_argument")
  }
  expect_error(text_to_image("a cat", fx$folder, seed = 2^32), "4294967295",
               class = "hfbridge_error_invalid_argument")
  big_seed <- text_to_image("a cat", fx$folder, seed = 2^31, steps = 1, width = 32, height = 32,
                            quiet = TRUE)
  expect_identical(attr(big_seed, "seed"), 2^31)
  expect_error(text_to_image("a cat", fx$folder, no_such = 1),
               "no_such", class = "hfbridge_error_invalid_argument")
  gpt2 <- hfbridge:::pybridge_module("fixtures.models")$ensure(names = list("gpt2"))$gpt2
  err <- expect_error(text_to_image("a cat", gpt2), "not a diffusers pipeline",
                      class = "hfbridge_error_unsupported")
  expect_identical(err$task, "text-to-image")
})
