#!/usr/bin/env bash
# Validates the Nix flake offline, with Debian's nix-bin (Nix 2.8), which can evaluate flakes but
# not a current nixpkgs (that needs Nix >= 2.18, and a network to fetch it). So the flake is
# evaluated against nix/stub-nixpkgs, a stand-in with exactly the attributes the flake uses and
# fake derivations that reference all their inputs:
#   1. every .nix file parses (nix-instantiate --parse);
#   2. `nix flake check --no-build` with nixpkgs overridden by the stub, for every system: a
#      missing attribute, a missing file or a wrong argument fails;
#   3. `nix eval` of what must hold: the app's program (the demo script exists), RETICULATE_PYTHON
#      in the dev shell, and the R wrapper's environment (RETICULATE_PYTHON is packages.python's
#      python; RETICULATE_USE_MANAGED_VENV=no), and that the wrapper really sets them.
# Flakes see only the files git tracks: a new file must be `git add`ed before this step sees it.
# Nix runs as a single user without a daemon, with its config, store (a chroot store) and cache
# under build/nix; nothing in /etc or /nix is touched. Installs nix-bin from Debian if missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

fail() {
  echo "nix-check: FAILED: $1" >&2
  [ $# -gt 1 ] && echo "nix-check: $2" >&2
  exit 1
}

if ! command -v nix >/dev/null 2>&1 || ! command -v nix-instantiate >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "nix-check: installing Debian's nix-bin"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nix-bin >/dev/null
fi

git rev-parse --is-inside-work-tree >/dev/null 2>&1 \
  || fail "$root is not a git work tree" "The flake is evaluated as git+file: run this from a git clone."
for f in flake.nix flake.lock nix/packages.nix nix/stub-nixpkgs/flake.nix; do
  git ls-files --error-unmatch "$f" >/dev/null 2>&1 \
    || fail "$f is not tracked by git" "Flakes see only files git tracks: git add $f"
done

# A private, daemon-less, single-user Nix: config, chroot store and caches in build/nix.
# A fresh store each run, so that nothing a previous run left there can hide a problem.
state="$root/build/nix"
if [ -d "$state/root" ]; then chmod -R u+w "$state/root" && rm -rf "$state/root"; fi
rm -rf "$state/cache"
mkdir -p "$state/etc" "$state/cache" "$state/root"
echo '{"flakes":[],"version":2}' > "$state/registry.json"
cat > "$state/etc/nix.conf" <<EOF
experimental-features = nix-command flakes
store = local?root=$state/root
build-users-group =
sandbox = false
substituters =
flake-registry = $state/registry.json
accept-flake-config = false
warn-dirty = false
EOF
export NIX_CONF_DIR="$state/etc" NIX_USER_CONF_FILES="$state/etc/nix.conf"
export XDG_CACHE_HOME="$state/cache" NIX_REMOTE=""
unset NIX_PATH

log="$state/last.log"
stub="path:$root/nix/stub-nixpkgs"
flake_args=(--no-write-lock-file --override-input nixpkgs "$stub")

# Runs a nix command, keeping its output; on failure prints it with a hint on what to fix.
run_nix() {
  local what=$1; shift
  if ! "$@" >"$log.out" 2>"$log"; then
    grep -v -e "^warning: not writing modified lock file" -e "^• Updated input" \
      -e "^    '" -e "^  → " -e "^evaluating flake" "$log" >&2 || true
    local hint="See the error above (add --show-trace to the command for where it came from)."
    local missing
    missing=$(grep -o "[0-9a-z]\{32\}-source/[^' :]*" "$log" | head -n 1 | cut -d/ -f2- || true)
    if grep -q "attribute '.*' missing" "$log"; then
      hint="The flake uses an attribute that nix/stub-nixpkgs lacks. If the pinned nixpkgs has it, add it to the stub (nix/stub-nixpkgs/names.nix or pkgs.nix); if not, fix the flake."
    elif grep -q -e "No such file or directory" -e "does not exist" "$log"; then
      hint="The flake references a file that is not in its source${missing:+ ($missing)}. Flakes see only files git tracks: create the file and git add it, or fix the reference."
    elif grep -q "stub nixpkgs:" "$log"; then
      hint="A builder got arguments nixpkgs would reject (see the stub's message above)."
    fi
    fail "$what" "$hint"
  fi
  cat "$log.out"
}

# 1. Every .nix file parses.
nix_files=$(git ls-files --cached --others --exclude-standard '*.nix')
for f in $nix_files; do
  nix-instantiate --parse "$f" >/dev/null 2>"$log" || { cat "$log" >&2; fail "$f does not parse"; }
done

# 2. The flake's outputs, all systems, against the stub.
run_nix "nix flake check (against nix/stub-nixpkgs)" \
  nix flake check --no-build "${flake_args[@]}" "$root" >/dev/null

# 3. What the flake promises, evaluated.
nix_eval() { run_nix "nix eval $1" nix eval "${flake_args[@]}" "$root#$1" "${@:2}"; }
for system in x86_64-linux aarch64-linux; do
  nix_eval "apps.$system.default.program" --raw >/dev/null
done

store_python='^/nix/store/[0-9a-z]{32}-[^/]+/bin/python$'
shell_python=$(nix_eval devShells.x86_64-linux.default.RETICULATE_PYTHON --raw)
[[ $shell_python =~ $store_python ]] \
  || fail "devShells.x86_64-linux.default.RETICULATE_PYTHON is '$shell_python', not a store path's bin/python"
shell_hook=$(nix_eval devShells.x86_64-linux.default.shellHook --raw)
for var in PYTHONPATH HF_HOME; do
  grep -q "export $var=" <<<"$shell_hook" || fail "the dev shell's shellHook does not set $var"
done

python_env=$(nix_eval packages.x86_64-linux.python.outPath --raw)
wrapper_python=$(nix_eval packages.x86_64-linux.default.wrapperEnv.RETICULATE_PYTHON --raw)
managed_venv=$(nix_eval packages.x86_64-linux.default.wrapperEnv.RETICULATE_USE_MANAGED_VENV --raw)
[ "$wrapper_python" = "$python_env/bin/python" ] \
  || fail "the R wrapper's RETICULATE_PYTHON is '$wrapper_python', not packages.python's ($python_env/bin/python)"
[ "$managed_venv" = "no" ] || fail "the R wrapper's RETICULATE_USE_MANAGED_VENV is '$managed_venv', not 'no'"
post_build=$(nix_eval packages.x86_64-linux.default.postBuild --raw)
grep -qF -- "--set RETICULATE_PYTHON '$wrapper_python'" <<<"$post_build" \
  || fail "the R wrapper does not set RETICULATE_PYTHON with makeWrapper"

echo "nix-check: ok: $(wc -w <<<"$nix_files") .nix files parse; the flake checks against nix/stub-nixpkgs (x86_64-linux, aarch64-linux)"
echo "nix-check: dev shell RETICULATE_PYTHON=$shell_python"
echo "nix-check: R wrapper RETICULATE_PYTHON=$wrapper_python RETICULATE_USE_MANAGED_VENV=$managed_venv"
