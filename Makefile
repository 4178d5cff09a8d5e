# The two commands of README.md. Both install what is missing first (tools/setup.sh).
ROOT := $(CURDIR)
export RETICULATE_PYTHON := $(ROOT)/.venv/bin/python
export R_LIBS := $(ROOT)/.rlib
export HF_HUB_DISABLE_TELEMETRY := 1
PY := $(ROOT)/.venv/bin/python

.PHONY: setup demo test lint bench docs clean

setup:
	@bash tools/setup.sh

demo: setup
	Rscript examples/quickstart.R

test: setup
	bash tools/test.sh

lint: setup
	bash tools/lint.sh

# The help pages (roxygen), then the pkgdown site into build/site (tools/build-site.sh).
docs: setup
	Rscript -e 'roxygen2::roxygenise("rpackage")'
	bash tools/build-site.sh

bench: setup
	bash bench/run_all.sh

clean:
	rm -rf .venv .rlib build
