# Publishing from R against the test mirror, with the real huggingface_hub client underneath:
# repo verbs, classed errors, and seed 004 (change weights in R, push, read back in Python).

publish_write <- "hf_rPublishWriteToken0123456"
publish_read <- "hf_rPublishReadToken01234567"

# The test mirror, with a mirror.json that lets publish_write write to rpub/* and
# publish_read only read.
local_publish_hub <- function(env = parent.frame()) {
  local_hub(env)
  mirror_config(list(
    write = list("rpub/*" = list(publish_write), "spaces/rpub/*" = list(publish_write)),
    tokens = list(publish_read), users = list(rtester = list(publish_write))
  ), env = env)
}

publish_src_folder <- function(files = list("config.json" = '{"model_type": "gpt2"}',
                                            "notes.txt" = "hello")) {
  dir <- tempfile("publish-src-")
  dir.create(dir)
  for (name in names(files)) writeLines(files[[name]], file.path(dir, name))
  dir
}

# The tiny GPT-2 of pybridge.fixtures (unprefixed names, as the real gpt2 repo), on the mirror.
publish_gpt2_source <- function() {
  folder <- hfbridge:::pybridge_module("fixtures.models")$ensure(names = list("gpt2"))$gpt2
  publish_repo("rpubsrc/gpt2", folder)
  folder
}

test_that("create, upload, delete, branch and tag return plain values", {
  local_publish_hub()
  Sys.setenv(HF_TOKEN = publish_write)
  made <- hub_create_repo("rpub/verbs")
  expect_identical(made$repo_id, "rpub/verbs")
  expect_identical(made$url, paste0(Sys.getenv("HF_ENDPOINT"), "/rpub/verbs"))
  src <- publish_src_folder()
  up <- hub_upload_folder(src, "rpub/verbs", commit_message = "first", quiet = TRUE)
  expect_named(up, c("commit_oid", "commit_url", "pr_url", "repo_id", "revision"))
  expect_match(up$commit_oid, "^[0-9a-f]{40}$")
  expect_identical(up$pr_url, NA_character_)
  expect_identical(hub_repo_info("rpub/verbs")$sha, up$commit_oid)
  one <- hub_upload_file(file.path(src, "notes.txt"), "docs/notes.txt", "rpub/verbs",
                         quiet = TRUE)
  expect_true("docs/notes.txt" %in% hub_list_files("rpub/verbs"))
  pr <- hub_upload_file(file.path(src, "notes.txt"), "pr/notes.txt", "rpub/verbs",
                        create_pr = TRUE, quiet = TRUE)
  expect_match(pr$pr_url, "/discussions/1$")
  gone <- hub_delete_file("notes.txt", "rpub/verbs")
  expect_false("notes.txt" %in% hub_list_files("rpub/verbs"))
  expect_true("notes.txt" %in% hub_list_files("rpub/verbs", revision = one$commit_oid))
  branch <- hub_create_branch("rpub/verbs", "dev")
  expect_identical(branch$commit, gone$commit_oid)
  tag <- hub_create_tag("rpub/verbs", "v1", revision = up$commit_oid, tag_message = "first")
  expect_identical(hub_repo_info("rpub/verbs", revision = "v1")$sha, up$commit_oid)
  space <- hub_create_repo("rpub/app", repo_type = "space", space_sdk = "docker")
  expect_identical(space$repo_type, "space")
  who <- hub_whoami()
  expect_identical(who$name, "rtester")
  expect_identical(who$role, "write")
  expect_identical(who$token_source, "HF_TOKEN")
  shown <- paste(capture.output(print(who), str(who)), collapse = "\n")
  expect_false(grepl(publish_write, shown, fixed = TRUE))
})

test_that("failures are classed, and a failed write leaves the store as it was", {
  local_publish_hub()
  src <- publish_src_folder()
  expect_error(hub_create_repo("rpub/errs"), class = "hfbridge_error_auth")
  err <- tryCatch(hub_create_repo("rpub/errs", token = publish_read), error = identity)
  expect_s3_class(err, "hfbridge_error_auth")
  expect_false(grepl(publish_read, conditionMessage(err), fixed = TRUE))
  expect_error(hub_whoami(), class = "hfbridge_error_auth")
  Sys.setenv(HF_TOKEN = publish_write)
  hub_create_repo("rpub/errs")
  expect_error(hub_create_repo("rpub/errs"), class = "hfbridge_error_repo_exists")
  expect_identical(hub_create_repo("rpub/errs", exist_ok = TRUE)$repo_id, "rpub/errs")
  first <- hub_upload_folder(src, "rpub/errs", quiet = TRUE)
  hub_upload_file(file.path(src, "notes.txt"), "b.txt", "rpub/errs", quiet = TRUE)
  err <- tryCatch(hub_upload_file(file.path(src, "notes.txt"), "c.txt", "rpub/errs",
                                  parent_commit = first$commit_oid, quiet = TRUE),
                  error = identity)
  expect_s3_class(err, "hfbridge_error_stale_parent")
  expect_identical(err$repo_id, "rpub/errs")
  expect_false("c.txt" %in% hub_list_files("rpub/errs"))
  err <- tryCatch(hub_upload_file(file.path(src, "missing.bin"), "m.bin", "rpub/errs"),
                  error = identity)
  expect_s3_class(err, "hfbridge_error_invalid_argument")
  expect_match(err$path, "missing.bin$")
  expect_error(hub_upload_folder(file.path(src, "nope"), "rpub/errs"),
               class = "hfbridge_error_invalid_argument")
  hub_create_branch("rpub/errs", "dev")
  expect_error(hub_create_branch("rpub/errs", "dev"), class = "hfbridge_error_ref_exists")
  err <- tryCatch(hub_create_branch("rpub/errs", "a b"), error = identity)
  expect_s3_class(err, "hfbridge_error_invalid_argument")  # the Hub's 400, with its reason
  expect_match(conditionMessage(err), "refused")
  for (bad in c("x\ny.txt", "dir/")) {
    expect_error(hub_upload_file(file.path(src, "notes.txt"), bad, "rpub/errs"),
                 class = "hfbridge_error_invalid_argument")
  }
  hub_create_tag("rpub/errs", "v1")
  expect_error(hub_upload_file(file.path(src, "notes.txt"), "t.txt", "rpub/errs",
                               revision = "v1"),
               class = "hfbridge_error_revision_not_found", regexp = "not a branch")
  for (token in c("hf_abc\nX-Evil: 1", "hf_abc def")) {
    err <- tryCatch(hub_whoami(token = token), error = identity)
    expect_s3_class(err, "hfbridge_error_invalid_argument")
    expect_false(grepl("hf_abc", conditionMessage(err), fixed = TRUE))
  }
  expect_error(hub_upload_file(file.path(src, "notes.txt"), "x", "rpub/errs",
                               parent_commit = "nothex"), class = "hfbridge_error_invalid_argument")
  head <- hub_repo_info("rpub/errs")$sha
  mirror_config(list(
    write = list("rpub/*" = list(publish_write)),
    faults = list(list(path = "/rpub/errs.git/info/lfs/objects/upload/*", kind = "close",
                       method = "PUT", times = -1))
  ))
  big <- file.path(src, "w.safetensors")
  writeBin(c(as.raw(0), as.raw(sample(0:255, 50000, replace = TRUE))), big)
  expect_error(hub_upload_folder(src, "rpub/errs", quiet = TRUE), class = "hfbridge_error_network")
  expect_identical(hub_repo_info("rpub/errs")$sha, head)
  lfs_tmp <- file.path(test_hub_store(), "models", "rpub", "errs", "lfs", "tmp")
  expect_identical(list.files(lfs_tmp), character())
})

test_that("seed 004: weights changed in R, pushed, read back by transformers and pipeline()", {
  local_publish_hub()
  source_folder <- publish_gpt2_source()
  weights <- safe_load_model("rpubsrc/gpt2")
  weights[["h.0.attn.c_attn.weight"]][2, 3] <- 0.625
  config <- jsonlite::read_json(hub_download("rpubsrc/gpt2", "config.json"))
  tok <- tokenizer_from_pretrained("rpubsrc/gpt2")
  dir <- file.path(tempfile("saved-"), "gpt2-r")
  dir.create(dirname(dir))
  files <- hub_save_model(dir, weights, config, tokenizer = tok,
                          card = list(license = "mit", base_model = "gpt2",
                                      pipeline_tag = "text-generation", tags = "r"),
                          max_shard_size = "30KB")
  expect_true(all(c("config.json", "model.safetensors.index.json", "tokenizer.json",
                    "tokenizer_config.json", "README.md") %in% basename(files)))
  res <- hub_push_model("rpub/gpt2-r", weights, config, tokenizer = tok,
                        card = list(license = "mit", pipeline_tag = "text-generation"),
                        token = publish_write, quiet = TRUE)
  expect_match(res$commit_oid, "^[0-9a-f]{40}$")
  expect_true("model.safetensors" %in% hub_list_files("rpub/gpt2-r"))

  # transformers itself, in a separate Python, through the mirror
  code <- paste(
    "import json, transformers",
    "transformers.logging.set_verbosity_error()",
    "tok = transformers.AutoTokenizer.from_pretrained('rpub/gpt2-r')",
    "model = transformers.AutoModelForCausalLM.from_pretrained('rpub/gpt2-r')",
    "w = model.transformer.h[0].attn.c_attn.weight",
    "out = model.generate(**tok('Hello', return_tensors='pt'), max_new_tokens=8,",
    "                     do_sample=False, pad_token_id=tok.eos_token_id)",
    "pipe = transformers.pipeline('text-generation', model=model, tokenizer=tok)",
    "transformers.set_seed(3)",
    "sampled = pipe(['Hello'], max_new_tokens=8, do_sample=True, top_k=20)",
    "print(json.dumps({'w12': float(w[1, 2]), 'w00': float(w[0, 0]),",
    "                  'greedy': tok.decode(out[0], skip_special_tokens=True),",
    "                  'sampled': sampled[0][0]['generated_text']}))",
    sep = "\n")
  py <- jsonlite::fromJSON(hub_test_python(code, env = c(
    HF_ENDPOINT = Sys.getenv("HF_ENDPOINT"), HF_HOME = tempfile("py-home-"),
    HF_HUB_DISABLE_XET = "1")))
  expect_identical(py$w12, 0.625)                      # R's [2, 3] is torch's [1, 2]
  expect_equal(py$w00, weights[["h.0.attn.c_attn.weight"]][1, 1], tolerance = 1e-7)

  gen <- pipeline("text-generation", "rpub/gpt2-r")
  greedy <- gen("Hello", max_new_tokens = 8, do_sample = FALSE)
  expect_identical(greedy$generated_text, py$greedy)   # generate() itself
  # Seeded sampling as transformers' pipeline over the same AutoModel and AutoTokenizer: a
  # list input draws one random number more than generate() alone (its DataLoader's seed).
  sampled <- gen("Hello", max_new_tokens = 8, do_sample = TRUE, top_k = 20, seed = 3)
  expect_identical(sampled$generated_text, py$sampled)
})

test_that("seed 004's custom architecture needs trust_remote_code = TRUE", {
  local_publish_hub()
  publish_gpt2_source()
  weights <- safe_load_model("rpubsrc/gpt2")
  config <- jsonlite::read_json(hub_download("rpubsrc/gpt2", "config.json"))
  config$model_type <- "tiny-custom"
  config$architectures <- list("TinyForCausalLM")
  config$auto_map <- list(AutoConfig = "configuration_tiny.TinyConfig",
                          AutoModelForCausalLM = "modeling_tiny.TinyForCausalLM")
  dir <- file.path(tempfile("custom-"), "model")
  dir.create(dir, recursive = TRUE)
  writeLines(c("from transformers import GPT2Config", "",
               "class TinyConfig(GPT2Config):", "    model_type = 'tiny-custom'"),
             file.path(dir, "configuration_tiny.py"))
  writeLines(c("from transformers import GPT2LMHeadModel",
               "from .configuration_tiny import TinyConfig", "",
               "class TinyForCausalLM(GPT2LMHeadModel):", "    config_class = TinyConfig"),
             file.path(dir, "modeling_tiny.py"))
  hub_push_model("rpub/custom", weights, config, tokenizer = "rpubsrc/gpt2", dir = dir,
                 token = publish_write, quiet = TRUE)
  expect_true(all(c("modeling_tiny.py", "configuration_tiny.py") %in%
                    hub_list_files("rpub/custom")))
  err <- tryCatch(pipeline("text-generation", "rpub/custom"), error = identity)
  expect_s3_class(err, "hfbridge_error_unsupported")
  expect_match(conditionMessage(err), "trust_remote_code")
  gen <- pipeline("text-generation", "rpub/custom", trust_remote_code = TRUE)
  out <- gen("Hello", max_new_tokens = 5, seed = 1)
  expect_true(startsWith(out$generated_text, "Hello"))
  expect_gt(nchar(out$generated_text), nchar("Hello"))
})

test_that("argument checks run in R, before Python", {
  expect_error(hub_create_repo("bad id!"), class = "hfbridge_error_invalid_argument")
  expect_error(hub_upload_file(NA_character_, repo_id = "rpub/x"),
               class = "hfbridge_error_invalid_argument")
  expect_error(hub_save_model(tempfile(), list(), list(model_type = "gpt2")),
               class = "hfbridge_error_invalid_argument")
  expect_error(hub_save_model(tempfile(), list(w = 1), "not-a-file.json", card = 3),
               class = "hfbridge_error_invalid_argument")
  expect_error(hub_push_model("rpub/x", list(w = 1), list(model_type = "gpt2"),
                              max_shard_size = "lots"), class = "hfbridge_error_invalid_argument")
})
