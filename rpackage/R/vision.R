# Images: embed_image() runs an image-text model's image tower (pybridge.vision) in batches
# under a progress bar; the image pipelines themselves are pipeline()'s (pipeline.R), with their
# calls handed to pybridge.vision.

#' Image embeddings as a numeric matrix, in the space of a CLIP model's text embeddings
#'
#' Runs the image tower of an image-text model such as CLIP on image files or URLs and returns
#' its image features (`get_image_features()` in transformers), one row per image. The same
#' model given to [embed_text()] returns text features in the same space, so that
#' `embed_text(query, model) %*% t(embed_image(paths, model))` ranks the images by how well
#' they match the text (with `normalize = TRUE` on both, these are cosine similarities).
#'
#' Images are opened as transformers opens them (EXIF orientation applied, converted to RGB)
#' and processed by the model's image processor in batches of `batch_size`; on a CPU the
#' batches run side by side, one per core. The rows equal transformers'
#' `model.get_image_features(**processor(images = image))` run one image at a time.
#'
#' A missing file, a folder or a text instead of a path signals
#' `hfbridge_error_invalid_argument`, and a file that is not an image
#' `hfbridge_error_invalid_file`, both with the fields `path` and `position`, before the model
#' loads. A URL that cannot be fetched signals `hfbridge_error_network`. A model without an
#' image tower (not an image-text model) signals `hfbridge_error_unsupported`.
#'
#' @param images A character vector of image paths (PNG, JPEG and the other formats Pillow
#'   reads) or http(s) URLs.
#' @param model A Hub repo id or a local folder of an image-text model such as
#'   `"openai/clip-vit-base-patch32"`.
#' @param normalize If `TRUE`, scale each row to unit (L2) length.
#' @param batch_size Images per forward pass.
#' @param timeout Seconds to wait for one image URL (`NULL`: 30).
#' @inheritParams embed_text
#' @return A numeric matrix with one row per image and one column per dimension of the model's
#'   joint space (`projection_dim`); its rownames are `names(images)`, if any.
#' @family pipelines
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' folder <- hub_snapshot("hfbridge-tiny/images", repo_type = "dataset",
#'                        allow_patterns = c("*.png", "*.jpg"), ignore_patterns = "broken/*")
#' paths <- list.files(folder, pattern = "[.](png|jpe?g)$", full.names = TRUE)
#' img <- embed_image(paths, "hfbridge-tiny/clip", normalize = TRUE)
#' txt <- embed_text("a red square", "hfbridge-tiny/clip", normalize = TRUE)
#' basename(paths)[order(img %*% t(txt), decreasing = TRUE)][1:3]   # the best matches first
embed_image <- function(images, model, normalize = FALSE, batch_size = 32, revision = "main",
                        device = "cpu", token = NULL, allow_pickle = FALSE,
                        trust_remote_code = FALSE, quiet = FALSE, timeout = NULL) {
  row_names <- names(images)
  images <- check_texts(images, "images")
  hub_check_token(token)
  if (!is.null(timeout) && (!is.numeric(timeout) || length(timeout) != 1L || is.na(timeout))) {
    hfbridge_abort("invalid_argument", "`timeout` must be NULL or a number of seconds.",
                   argument = "timeout")
  }
  job <- py_call("vision", "embed_start", as.list(images), check_string(model, "model"),
                 normalize = check_flag(normalize, "normalize"),
                 batch_size = check_count(batch_size, "batch_size", 1L),
                 revision = check_string(revision, "revision"),
                 device = check_string(device, "device"),
                 allow_pickle = check_flag(allow_pickle, "allow_pickle"),
                 trust_remote_code = check_flag(trust_remote_code, "trust_remote_code"),
                 env = hf_env(), token = token, quiet = check_flag(quiet, "quiet"),
                 timeout = timeout)
  out <- job_run(job, "Embedding images", quiet, units = embed_chunk)
  rownames(out) <- row_names
  out
}
