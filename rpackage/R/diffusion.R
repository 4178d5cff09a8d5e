# Text to image: pybridge.diffusion runs a diffusers pipeline on a worker thread, one job unit per
# denoising step; job_run() shows a cli progress bar per step and stops the run on an interrupt;
# R gives each image its dims and class.

#' Generate images from text with a diffusers pipeline
#'
#' Runs a diffusers text-to-image pipeline (such as Stable Diffusion, loaded with diffusers'
#' `AutoPipelineForText2Image`) on one or several prompts and returns each image as an R array
#' of height x width x 3 (red, green, blue) with values in \[0, 1\], which
#' `plot(as.raster(x))` shows. With `file`, the images are also written as PNG files.
#'
#' The images equal those of the same call in Python:
#' `pipe(prompt, num_inference_steps = steps, height = height, width = width,
#' guidance_scale = guidance_scale, generator = torch.Generator("cpu").manual_seed(seed))`.
#' All prompts run in that one call, as a batch, so an image depends on the seed and on its
#' place in the batch: run one prompt at a time to get the image a prompt gives alone. Without
#' `seed`, torch's global random generator is used and each call gives other images.
#'
#' **This is slow on a CPU.** Stable Diffusion 1.5 takes several seconds per step at 512 x 512
#' (minutes for the default 50 steps) and about 4 GB of memory; fewer `steps` (20 to 30 with
#' the default scheduler) and smaller images are faster. A progress bar shows each step;
#' interrupting R (Ctrl+C, Esc) stops the run at the end of the current step. The pipeline is
#' loaded once per session and reused (see [pipeline_cache_info()]).
#'
#' Only the pipeline's own folders are downloaded (those named by its `model_index.json`), as
#' safetensors: pickle weights and the weight variants (`*.fp16.safetensors`) are not fetched.
#' Bad input is a classed error: an empty prompt, or a `height` or `width` that is not a multiple
#' of 8, signals `hfbridge_error_invalid_argument`; a model that is not a diffusers pipeline
#' (no `model_index.json`, such as a transformers model), `hfbridge_error_unsupported`.
#'
#' @param prompt A character vector: the text of each image.
#' @param model A Hub repo id or a local folder of a diffusers text-to-image pipeline.
#' @param seed `NULL` or a whole number from 0 to 2^32 - 1: the seed of the random generator,
#'   for images that can be made again.
#' @param steps The number of denoising steps (diffusers' `num_inference_steps`).
#' @param width,height The image's size in pixels, multiples of 8. `NULL` uses the model's own
#'   size (512 x 512 for Stable Diffusion 1.5).
#' @param guidance_scale How closely the image follows the prompt (classifier-free guidance);
#'   values of 1 or less turn the guidance off.
#' @param negative_prompt `NULL`, or what the images should not show: one text for every prompt,
#'   or one per prompt.
#' @param n The number of images per prompt.
#' @param file `NULL`, or the PNG file of each image (one path per image, in the order of the
#'   result). They are written by Python's PIL exactly as diffusers' images save in Python. A
#'   name that does not end in `.png`, a folder, or a folder that cannot be written is refused
#'   before the model runs, as are images too large for the memory free
#'   (`hfbridge_error_memory`).
#' @param ... Other arguments of the pipeline's call, such as `eta` or `clip_skip`.
#' @param revision A branch, tag or commit of the model repository.
#' @param device `"cpu"`, or `"cuda"`, `"cuda:1"`, `"mps"` where torch has them.
#' @param token A Hub token for private or gated models; by default `HF_TOKEN` or the token file.
#' @param quiet If `TRUE`, no progress bar.
#' @return For one image, an array of height x width x 3 with values in \[0, 1\] and the class
#'   `hfbridge_image` (it prints a summary; `unclass()` gives the plain array); its attributes
#'   `prompt`, `model`, `seed`, `steps` and `file` say how it was made. For several prompts or
#'   `n > 1`, a list of such arrays, one per image: the `n` images of the first prompt, then those
#'   of the second, and so on. With `file`, the result is returned invisibly.
#' @family pipelines
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' # A tiny stand-in pipeline: real steps and shapes, a noisy picture.
#' png <- file.path(tempdir(), "lighthouse.png")
#' img <- text_to_image("a watercolor painting of a lighthouse at sunset",
#'                      "hfbridge-tiny/stable-diffusion",
#'                      seed = 42, steps = 2, width = 64, height = 64, file = png)
#' dim(img)
#' plot(as.raster(img))
#'
#' imgs <- text_to_image(c("a red apple", "a green pear"), "hfbridge-tiny/stable-diffusion",
#'                       seed = 1, steps = 2, width = 64, height = 64)
#' for (x in imgs) plot(as.raster(x))
text_to_image <- function(prompt, model, seed = NULL, steps = 50L, width = NULL, height = NULL,
                          guidance_scale = 7.5, negative_prompt = NULL, n = 1L, file = NULL, ...,
                          revision = "main", device = "cpu", token = NULL, quiet = FALSE) {
  prompt <- check_texts(prompt, "prompt")
  model <- check_string(model, "model")
  if (!is.null(negative_prompt)) negative_prompt <- as.list(check_texts(negative_prompt,
                                                                        "negative_prompt"))
  if (!is.null(file)) file <- as.list(path.expand(check_texts(file, "file")))
  if (!is.null(seed)) seed <- check_seed(seed)
  quiet <- check_flag(quiet, "quiet")
  hub_check_token(token)
  job <- py_call("diffusion", "start", as.list(prompt), model, seed = seed,
                 steps = check_count(steps, "steps", 1L),
                 width = diffusion_size(width, "width"), height = diffusion_size(height, "height"),
                 guidance_scale = diffusion_number(guidance_scale, "guidance_scale"),
                 negative_prompt = negative_prompt, n = check_count(n, "n", 1L), files = file,
                 args = pipeline_named_args(list(...), "text-to-image"),
                 revision = check_string(revision, "revision"),
                 device = check_string(device, "device"), env = hf_env(), token = token,
                 quiet = quiet)
  res <- job_run(job, "Generating", quiet, units = 1L, seconds = 0.5, whole = FALSE,
                 format = paste("Generating {cli::pb_bar} step {cli::pb_current}/{cli::pb_total}",
                                "| ETA {cli::pb_eta}"))
  images <- diffusion_images(res, list(model = model, seed = seed, steps = as.integer(steps)))
  if (any(res$nsfw)) {
    hfbridge_warn("nsfw", sprintf(
      "The model's safety checker blanked %d of %d images (they are black).", sum(res$nsfw),
      length(res$nsfw)), images = which(res$nsfw))
  }
  out <- if (length(images) == 1L) images[[1L]] else images
  if (is.null(file)) out else invisible(out)
}

# A size: NULL (the model's own) or a whole number; pybridge checks that it is a multiple of 8.
diffusion_size <- function(x, arg) {
  if (is.null(x)) NULL else check_count(x, arg, 1L)
}

diffusion_number <- function(x, arg) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x)) {
    hfbridge_abort("invalid_argument", sprintf("`%s` must be one number, not %s.", arg,
                                               describe_value(x)), argument = arg)
  }
  as.numeric(x)
}

# The job's n x height x width x 3 array as a list of height x width x 3 images.
diffusion_images <- function(res, made) {
  values <- res$images
  dims <- dim(values)
  lapply(seq_len(dims[1L]), function(i) {
    x <- values[i, , , , drop = FALSE]
    dim(x) <- dims[-1L]
    structure(x, prompt = res$prompt[[i]], model = made$model, seed = made$seed,
              steps = made$steps, file = if (nzchar(res$file[[i]])) res$file[[i]],
              class = c("hfbridge_image", "array"))
  })
}

#' @export
print.hfbridge_image <- function(x, ...) {
  cat(format(x), sep = "\n")
  invisible(x)
}

#' @export
format.hfbridge_image <- function(x, ...) {
  d <- dim(x)
  made <- c(model = attr(x, "model"), seed = attr(x, "seed"), steps = attr(x, "steps"))
  c(sprintf("<hfbridge image> %d x %d pixels (height x width x %d), values in [0, 1]",
            d[1L], d[2L], d[3L]),
    if (!is.null(attr(x, "prompt"))) sprintf("  prompt: %s", attr(x, "prompt")),
    if (length(made)) sprintf("  %s", paste(names(made), made, sep = ": ", collapse = ", ")),
    if (!is.null(attr(x, "file"))) sprintf("  file:   %s", attr(x, "file")),
    "  plot(as.raster(x)) shows it; unclass(x) is the plain array.")
}
