#!/usr/bin/env bash
# Builds the pkgdown site of the R package into build/site (`make docs`; tests/test_site.py).
# pkgdown runs every help example and renders every article, against the demo Hub that
# hfbridge:::examples_ready() starts, with the hfbridge installed in R_LIBS (`make setup` installs
# the current one). A site built from the same sources is kept: build/site/.sources holds their
# hash. FORCE=1 builds anew.
#
# The site loads nothing from other hosts. pkgdown 2.0.7 takes Font Awesome, bootstrap-toc,
# headroom.js, clipboard.js, fuse.js, autocomplete.js and mark.js from CDNs (jQuery and
# Bootstrap come from bslib, on disk); rpackage/pkgdown/templates/head.html loads them from the
# site's vendor/ folder instead, which this script fills from:
#   - Debian packages (tools/apt-packages.txt): Font Awesome's CSS and web fonts from
#     r-cran-fontawesome, clipboard.js from node-clipboard;
#   - tools/site/vendor/, the five that Debian does not package, each with its licence: headroom.js
#     0.11.0, fuse.js 6.4.6, autocomplete.js 0.38.0 and mark.js 8.11.1 (the files of those npm
#     releases) and bootstrap-toc 1.0.1; each is the file pkgdown names, byte for byte, as the
#     integrity hashes head.html keeps from pkgdown check in the browser.
# After the build, one fix of the HTML (below, in Python): pkgdown 2.0.7 links an R6 class's
# inherited methods to `topic.html#method-<name>`, while roxygen 7.2 names the anchors
# `method-<class>-<name>`; the links are rewritten to the anchors that exist.
set -euo pipefail
source "$(dirname "$0")/env.sh"
site=build/site

sources=$(find rpackage/DESCRIPTION rpackage/NAMESPACE rpackage/NEWS.md rpackage/_pkgdown.yml \
  rpackage/R rpackage/man rpackage/vignettes rpackage/pkgdown pybridge tools/site \
  tools/build-site.sh -type f -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null |
  LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
if [ "${FORCE:-0}" != 1 ] && [ -f "$site/.sources" ] && [ "$(cat "$site/.sources")" = "$sources" ]; then
  echo "build-site: $site is up to date"
  exit 0
fi

rm -rf "$site"
# pkgdown.internet = FALSE: pkgdown would otherwise ask CRAN whether the package is there.
Rscript -e 'options(pkgdown.internet = FALSE)
            pkgdown::build_site("rpackage", override = list(destination = "../build/site"),
                                preview = FALSE, install = FALSE, new_process = TRUE)'

vendor=$site/vendor
mkdir -p "$vendor/fontawesome"
fontawesome=$(Rscript -e 'cat(system.file("fontawesome", package = "fontawesome"))')
cp -r "$fontawesome/css" "$fontawesome/webfonts" "$vendor/fontawesome/"
cp /usr/share/nodejs/clipboard/dist/clipboard.js "$vendor/"
cp tools/site/vendor/*.js "$vendor/"

.venv/bin/python - "$site" <<'PY'
import pathlib
import re
import sys

site = pathlib.Path(sys.argv[1])
# R6 inherited methods: <span class="pkg-link" data-pkg=.. data-topic="T" data-id="M"><a href=
# "T.html#method-M"> -> "T.html#method-T-M", roxygen's anchor.
link = re.compile(r'(data-topic="([\w.]+)" data-id="(\w+)"><a href=["\'])\2\.html#method-\3(["\'])')
for page in site.rglob("*.html"):
    text = page.read_text(encoding="utf-8")
    fixed = link.sub(lambda m: f"{m[1]}{m[2]}.html#method-{m[2]}-{m[3]}{m[4]}", text)
    if fixed != text:
        page.write_text(fixed, encoding="utf-8")
# Nothing may be loaded from another host.
load = re.compile(r'<(?:script|img|iframe|source|link)\b[^>]*?(?:src|href)=["\'](?:https?:)?//',
                  re.I)
remote = sorted(str(p) for p in site.rglob("*.html") if load.search(p.read_text(encoding="utf-8")))
if remote:
    sys.exit("build-site: pages that load from other hosts: " + ", ".join(remote[:10]))
PY
echo "$sources" > "$site/.sources"
echo "build-site: built $site"
