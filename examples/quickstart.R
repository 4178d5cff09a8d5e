# hfbridge quickstart: the Hugging Face workflow from R, against a local Hub.
#
# Run with `make demo` (or Rscript examples/quickstart.R with RETICULATE_PYTHON set). No internet
# is needed: the demo serves a store of small models through the local Hub mirror, and R uses the
# same cache as Python's huggingface_hub.
#
# The store (pybridge.fixtures.demo.DEMO_REPOS) holds sentence-transformers/all-MiniLM-L6-v2 (a
# real model), the same folder as bert-base-uncased (a BERT uncased WordPiece model), and tiny
# stand-ins for gpt2 and distilbert-base-uncased, built offline. Each section below runs the
# seeds' R code as written; a section whose verbs are not in this build is skipped.

library(hfbridge)

section <- function(title) cat("\n==== ", title, "\n", sep = "")
has <- function(...) all(c(...) %in% getNamespaceExports("hfbridge"))
skipped <- function(what) cat("(skipped: ", what, " is not in this build of hfbridge)\n", sep = "")

# The Python of pybridge, for the two steps that run in a separate Python process. R's
# LD_LIBRARY_PATH is cleared for it: it may point at a different libpython.
demo_python <- function() {
  python <- Sys.getenv("RETICULATE_PYTHON")
  if (!nzchar(python)) python <- file.path(pybridge_venv_path(), "bin", "python")
  python
}

run_python <- function(args, env = character()) {
  out <- system2(demo_python(), args, stdout = TRUE, stderr = FALSE,
                 env = c("LD_LIBRARY_PATH=", env))
  status <- attr(out, "status")
  if (!is.null(status) && status != 0) stop("Python failed: ", paste(args, collapse = " "))
  out
}

# ---- 1. A local Hub over the demo store ------------------------------------------------------
section("1. Start a local Hub mirror over the demo store")
store <- Sys.getenv("HFBRIDGE_DEMO_STORE", file.path(tempdir(), "hfbridge-demo-store"))
invisible(run_python(c("-m", "pybridge.fixtures.demo", shQuote(store))))
mirror <- hub_mirror_start(store)
print(mirror)
Sys.setenv(
  HF_ENDPOINT = mirror$url,
  HF_HOME = file.path(tempdir(), "hfbridge-demo-home"),
  HF_HUB_DISABLE_TELEMETRY = "1"
)
Sys.unsetenv(c("HF_HUB_CACHE", "HF_HUB_OFFLINE"))
cat("HF_ENDPOINT =", Sys.getenv("HF_ENDPOINT"), "\nHF_HOME     =", Sys.getenv("HF_HOME"), "\n")

# ---- 2. Download files (seed 000, "1. Download Model from Hub") -----------------------------
section("2. hub_download()")
config_path <- hub_download("gpt2", "config.json")
cat("config.json is cached at", config_path, "\n")
cat(readLines(config_path, n = 6), sep = "\n")

# Download a specific file from a model repository
model_path <- hub_download(
  repo_id = "gpt2",
  filename = "model.safetensors"
)

# Download with specific revision/branch
model_path <- hub_download(
  repo_id = "gpt2",
  filename = "model.safetensors",
  revision = "main"
)
cat("model.safetensors:", file.size(model_path), "bytes\n")

# The transformer course's name for the same verb (seed 001)
config_path <- hf_hub_download("distilbert-base-uncased", filename = "config.json")
config_path

# ---- 3. A whole model, with patterns ---------------------------------------------------------
section("3. hub_snapshot() with patterns, hub_file_exists(), hub_load()")
folder <- hub_snapshot("sentence-transformers/all-MiniLM-L6-v2",
                       allow_patterns = c("*.json", "*.txt"))
print(list.files(folder, recursive = TRUE))
cat("model.safetensors exists on the Hub:",
    hub_file_exists("sentence-transformers/all-MiniLM-L6-v2", "model.safetensors"), "\n")
cat("... and was not downloaded:", !file.exists(file.path(folder, "model.safetensors")), "\n")
cat("pytorch_model.bin exists on the Hub:",
    hub_file_exists("sentence-transformers/all-MiniLM-L6-v2", "pytorch_model.bin"), "\n")
info <- hub_repo_info("gpt2")
cat("gpt2 is at commit", info$sha, "with", nrow(info$files), "files\n")
# Metaflow's @huggingface_hub(load = ...) forms
paths <- hub_load(list(
  "gpt2",
  list(repo_id = "bert-base-uncased", allow_patterns = c("*.json", "vocab.txt"))
))
print(paths)

# ---- 4. The cache ----------------------------------------------------------------------------
section("4. hub_cache_scan()")
print(hub_cache_scan()[, c("repo_id", "revisions", "size_on_disk", "nb_files", "last_accessed")])

section("5. The cache is shared with Python's huggingface_hub (offline)")
code <- "import huggingface_hub as h; print(h.hf_hub_download('gpt2', 'config.json'))"
python_path <- utils::tail(run_python(c("-c", shQuote(code)), "HF_HUB_OFFLINE=1"), 1)
config_path <- hub_download("gpt2", "config.json")
cat("R found     ", config_path, "\n")
cat("Python found", python_path, "\n")
cat("Same file, no download by Python:", identical(python_path, config_path), "\n")
stopifnot(identical(python_path, config_path))

# Offline in R too: a cached file needs no Hub at all
Sys.setenv(HF_HUB_OFFLINE = "1")
stopifnot(identical(hub_download("gpt2", "config.json"), config_path))
Sys.unsetenv("HF_HUB_OFFLINE")

# ---- 6. Errors (seed 000, "Error Handling") --------------------------------------------------
section("6. Classed errors")
# Handle download failures
tryCatch({
  path <- hub_download("nonexistent/model", "file.bin")
}, error = function(e) {
  message("Model not found: ", e$message
)
})
err <- tryCatch(hub_download("gpt2", "file.bin"), error = function(e) e)
cat("class:", class(err)[1], "| repo_id:", err$repo_id, "| filename:", err$filename, "\n")

# ---- 7. Tokenizers (seed 000 "2. Load Tokenizer"; seed 001 "The tok package") -----------------
section("7. Tokenizers")
if (has("tokenizer")) {
  # Load pre-trained tokenizer matching the model
  tokenizer <- tokenizer$from_pretrained("gpt2")

  # Encode text to token IDs
  encoded <- tokenizer$encode("Hello, world!")
  print(encoded$ids)

  # Decode back to text
  print(tokenizer$decode(encoded$ids))

  # Batch encoding
  texts <- c("First sentence.", "Second sentence.")
  batch <- tokenizer$encode_batch(texts)
  print(lapply(batch, function(x) x$ids))
} else {
  skipped("tokenizer")
}
if (has("tokenizer_from_pretrained")) {
  # Load a pre-trained tokenizer from the Hub
  tokenizer <- tokenizer_from_pretrained("bert-base-uncased")

  encoded <- tokenizer$encode("Deep learning is powerful.")
  print(encoded$ids)
  print(encoded$tokens)
} else {
  skipped("tokenizer_from_pretrained")
}

# ---- 8. Safetensors (seed 000 "3. Load Model Weights"; seed 001) ------------------------------
section("8. Safetensors weights")
if (has("safe_load_file")) {
  # Read safetensors file
  weights <- safe_load_file(model_path)

  # weights is a named list of tensors
  print(utils::head(names(weights)))

  # Access individual tensors
  embedding_weights <- weights[["wte.weight"]]
  print(dim(embedding_weights))

  # Download model weights in safetensors format
  weights_path <- hf_hub_download("distilbert-base-uncased", filename = "model.safetensors")

  # Load as a named list of tensors
  weights <- safe_load_file(weights_path)
  print(names(weights)[1:5])   # inspect top-level weight names
} else {
  skipped("safe_load_file")
}

# ---- 9. Pipelines, embeddings, hidden states (seed 001 "Pipelines"; seed 003 examples) --------
# (section kept by the pipelines developer: R/pipeline.R, R/embed.R)
section("9. Pipelines, embeddings and hidden states")
if (has("pipeline", "embed_text", "hidden_states")) {
  # Seed 001's classifier: pipeline() with no model picks the task's default model, as
  # transformers does (in the demo store, a tiny DistilBERT stand-in labelled NEGATIVE/POSITIVE)
  classifier <- pipeline("sentiment-analysis")
  print(classifier)
  result <- classifier(list("This course is excellent.", "The explanation was very confusing."))
  print(result)   # a data frame: text_id, text, label, score

  # The course's AutoModel example, as labels
  sentences <- list("The food was excellent.", "The service was slow and disappointing.")
  print(classifier(sentences)$label)

  # Sentence embeddings: a numeric matrix, one row per text
  texts <- c(cat = "The cat sat on the mat.", dog = "A dog lay on the rug.",
             stats = "R is a language for statistics.")
  e <- embed_text(texts, "sentence-transformers/all-MiniLM-L6-v2", normalize = TRUE)
  print(dim(e))
  print(round(e %*% t(e), 3))   # cosine similarities

  # Hidden states (seed 001's last_hidden_state): one tokens x hidden matrix per text
  hs <- hidden_states("Deep learning is powerful.", "bert-base-uncased")
  print(dim(hs[[1]]))

  # Text generation, reproducible with a seed
  generator <- pipeline("text-generation", "hfbridge-tiny/gpt2")
  print(generator(c("Once upon a time", "The weather is"), max_new_tokens = 8, do_sample = TRUE,
                  seed = 1))

  # Named entities with 1-based offsets: substr() gives the entity's text
  ner <- pipeline("ner", "hfbridge-tiny/bert-ner", aggregation_strategy = "simple")
  ents <- ner("Alice lives in Berlin.")
  ents$text <- substring("Alice lives in Berlin.", ents$start, ents$end)
  print(ents)

  print(pipeline_cache_info())   # loaded once per session, freed by pipeline_cache_clear()
} else {
  skipped("pipeline")
}
# ---- end of section 9

section("Done")
hub_mirror_stop(mirror)
cat("The demo cache stays in", Sys.getenv("HF_HOME"), "until the R session's tempdir is removed.\n")
