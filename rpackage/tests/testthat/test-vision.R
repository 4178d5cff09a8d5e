# Image pipelines and embed_image() against transformers itself: the tiny image models of
# pybridge.fixtures.vision_models are published on the test mirror, and each result is compared
# with transformers' own pipeline (or CLIP's get_image_features / get_text_features) called in
# Python through reticulate on the same folder and the same image files.

vision_fixtures <- function() {
  vm <- hfbridge:::pybridge_module("fixtures.vision_models")
  folders <- vm$ensure()
  ids <- vm$REPO_IDS
  for (name in names(ids)) publish_repo(ids[[name]], folders[[name]])
  publish_repo(vm$IMAGES_REPO, folders$images, repo_type = "dataset")
  images <- file.path(folders$images, names(vm$image_files()))
  list(vm = vm, folders = folders, ids = ids, images = images)
}

local_one_torch_thread <- function(env = parent.frame()) {
  torch <- hfbridge:::pybridge_module("models")$import_torch()
  before <- torch$get_num_threads()
  torch$set_num_threads(1L)
  withr::defer(torch$set_num_threads(before), envir = env)
}

py_image_pipeline <- function(task, folder) {
  reticulate::import("transformers")$pipeline(task, model = folder, device = "cpu")
}

# transformers' per-image lists of results as one data frame of image, label, score (and box).
py_rows <- function(ref, images) {
  rows <- do.call(rbind, Map(function(res, img) {
    do.call(rbind, lapply(res, function(r) {
      box <- if (is.null(r$box)) list() else lapply(r$box, as.integer)
      as.data.frame(c(list(image = img, label = r$label, score = r$score), box),
                    stringsAsFactors = FALSE)
    }))
  }, ref, images))
  rownames(rows) <- NULL
  rows
}

test_that("image-classification and object-detection give transformers' labels, scores, boxes", {
  local_hub()
  local_one_torch_thread()
  fx <- vision_fixtures()
  classify <- pipeline("image-classification", fx$ids$vit)
  res <- classify(fx$images, top_k = 2, quiet = TRUE)
  expect_s3_class(res, "data.frame")
  expect_named(res, c("image", "label", "score"))
  want <- py_rows(py_image_pipeline("image-classification", fx$folders$vit)(
    as.list(fx$images), top_k = 2L), fx$images)
  expect_identical(res$image, want$image)
  expect_identical(res$label, want$label)
  expect_equal(res$score, want$score, tolerance = 1e-5)
  expect_identical(res$label[1], "red")  # red_circle.png: the colour it was taught

  detect <- pipeline("object-detection", fx$ids$detr)
  boxes <- detect(fx$images, threshold = 0)
  expect_named(boxes, c("image", "label", "score", "xmin", "ymin", "xmax", "ymax"))
  want <- py_rows(py_image_pipeline("object-detection", fx$folders$detr)(
    as.list(fx$images), threshold = 0), fx$images)
  expect_identical(boxes$label, want$label)
  expect_equal(boxes$score, want$score, tolerance = 1e-5)
  for (side in c("xmin", "ymin", "xmax", "ymax")) {
    expect_type(boxes[[side]], "integer")
    expect_identical(boxes[[side]], want[[side]])
  }
})

test_that("zero-shot-image-classification and image-to-text as transformers, also from URLs", {
  local_hub()
  local_one_torch_thread()
  fx <- vision_fixtures()
  labels <- c("a red circle", "a green square", "a blue triangle")
  zs <- pipeline("zero-shot-image-classification", fx$ids$clip, candidate_labels = labels)
  res <- zs(fx$images)
  want <- py_rows(py_image_pipeline("zero-shot-image-classification", fx$folders$clip)(
    as.list(fx$images), candidate_labels = as.list(labels)), fx$images)
  expect_identical(res$label, want$label)
  expect_equal(res$score, want$score, tolerance = 1e-5)

  urls <- paste0(Sys.getenv("HF_ENDPOINT"), "/datasets/", fx$vm$IMAGES_REPO, "/resolve/main/",
                 basename(fx$images))
  from_urls <- zs(urls)
  expect_identical(from_urls$image, rep(urls, each = length(labels)))
  expect_equal(from_urls$score, res$score, tolerance = 1e-6)

  caption <- pipeline("image-to-text", fx$ids$blip)
  caps <- caption(fx$images[1:4])
  expect_named(caps, c("image", "generated_text"))
  ref <- py_image_pipeline("image-text-to-text", fx$folders$blip)
  expect_identical(caps$generated_text,
                   vapply(fx$images[1:4], function(p) ref(p, text = "")[[1]]$generated_text, ""),
                   ignore_attr = TRUE)
})

test_that("embed_image() and embed_text() on CLIP equal its image and text features", {
  local_hub()
  local_one_torch_thread()
  fx <- vision_fixtures()
  transformers <- reticulate::import("transformers")
  torch <- reticulate::import("torch")
  model <- transformers$CLIPModel$from_pretrained(fx$folders$clip)
  processor <- transformers$CLIPProcessor$from_pretrained(fx$folders$clip)
  load_image <- transformers$image_utils$load_image
  with(torch$no_grad(), {
    want <- t(vapply(fx$images, function(p) {
      px <- processor(images = load_image(p), return_tensors = "pt")
      model$get_image_features(pixel_values = px$pixel_values)$pooler_output$numpy()[1, ]
    }, numeric(16)))
    texts <- c("a red circle", "a green square")
    tok <- processor$tokenizer(texts, padding = TRUE, return_tensors = "pt")
    want_text <- model$get_text_features(input_ids = tok$input_ids,
                                         attention_mask = tok$attention_mask)$pooler_output$numpy()
  })
  img <- embed_image(setNames(fx$images, basename(fx$images)), fx$ids$clip, batch_size = 4,
                     quiet = TRUE)
  expect_identical(dim(img), c(length(fx$images), 16L))
  expect_identical(rownames(img), basename(fx$images))
  expect_equal(unname(img), unname(want), tolerance = 1e-5)
  txt <- embed_text(texts, fx$ids$clip, quiet = TRUE)
  expect_equal(txt, want_text, tolerance = 1e-5)
  # one space: each caption's nearest picture is the one transformers' features give (the tiny
  # model is trained anew in each fresh checkout, so which picture that is may change)
  unit_img <- embed_image(fx$images, fx$ids$clip, normalize = TRUE, quiet = TRUE)
  unit_txt <- embed_text(texts, fx$ids$clip, normalize = TRUE, quiet = TRUE)
  best <- apply(unit_img %*% t(unit_txt), 2, which.max)
  unit <- function(m) m / sqrt(rowSums(m^2))
  expect_identical(best, apply(unit(want) %*% t(unit(want_text)), 2, which.max))
})

test_that("bad images and models are classed errors", {
  local_hub()
  fx <- vision_fixtures()
  classify <- pipeline("image-classification", fx$ids$vit)
  err <- expect_error(classify("a photo of a cat"), class = "hfbridge_error_invalid_argument")
  expect_match(conditionMessage(err), "not text")
  expect_identical(err$path, "a photo of a cat")
  err <- expect_error(classify(c(fx$images[1], "missing.png")),
                      class = "hfbridge_error_invalid_argument")
  expect_identical(err$position, 2L)
  corrupt <- file.path(fx$folders$images, "broken", "corrupt.png")
  err <- expect_error(embed_image(corrupt, fx$ids$clip), class = "hfbridge_error_invalid_file")
  expect_identical(err$path, corrupt)
  expect_error(classify(fx$images[1], top_k = 0), class = "hfbridge_error_invalid_argument")
  expect_error(classify(1:2), class = "hfbridge_error_invalid_argument")
  expect_error(pipeline("object-detection", fx$ids$blip), class = "hfbridge_error_unsupported")
  expect_error(embed_image(fx$images[1], fx$ids$vit), class = "hfbridge_error_unsupported")
  missing_url <- paste0(Sys.getenv("HF_ENDPOINT"), "/datasets/", fx$vm$IMAGES_REPO,
                        "/resolve/main/missing.png")
  expect_error(classify(missing_url), class = "hfbridge_error_network")
  expect_true(all(c("image-classification", "object-detection", "image-to-text",
                    "zero-shot-image-classification") %in% pipeline_tasks()))
})
