# The package names the stub offers. Each one exists in the pinned nixpkgs (flake.lock); a name
# added here must be checked against it (e.g. `nix eval nixpkgs#python3Packages.NAME.version` on a
# machine with Nix >= 2.18 and a network).
{
  # pyproject.toml's dependencies and `test` extra (normalised names), and the build tools.
  python = [
    "numpy" "huggingface-hub" "tokenizers" "safetensors" "transformers" "torch"
    "pytest" "hypothesis" "sentence-transformers" "sentencepiece" "protobuf"
    "setuptools" "ruff" "datasets" "pyarrow" "selenium" "accelerate" "peft"
    "filelock" "fsspec" "pandas" "pyyaml" "fastapi" "uvicorn" "openai"
    "starlette" "llguidance" "jinja2"
    "diffusers" "pillow"  # text_to_image() (issue 24)
    "onnxruntime" "onnx"  # the fast path (issue 25)
  ];
  # CRAN packages: those Debian ships for this project (tools/apt-packages.txt), so that a
  # dependency added to rpackage/DESCRIPTION from that list evaluates; '.' written '_'.
  r = [
    "reticulate" "testthat" "jsonlite" "cli" "rlang" "withr" "processx" "callr"
    "shiny" "promises" "later" "future" "future_apply" "parallelly" "progressr" "batchtools"
    "future_batchtools"
    "httr" "curl" "fs" "filelock"
    "roxygen2" "rcmdcheck" "covr" "bench" "devtools" "pkgload" "R6"
    "data_table" "tibble" "digest" "yaml" "bit64"
    "knitr" "rmarkdown" "pkgdown"  # vignettes and the site (issue 26)
  ];
}
