# The Python package pybridge, built from pyproject.toml with setuptools, its test suite run by
# pytest in the check phase (offline: the tests serve the Hub from a local mirror on 127.0.0.1,
# which the build sandbox allows).
{ lib
, python3Packages
, pyproject        # nix/pyproject.nix applied to ../pyproject.toml
, extraPackages    # Python packages nixpkgs lacks, by distribution name
}:
let
  ps = python3Packages;
  # A distribution name from pyproject.toml -> the nixpkgs attribute (same name after
  # normalisation), or one of ours.
  fromName = name:
    extraPackages.${name} or ps.${name} or (throw ''
      nix/pybridge.nix: python3Packages has no '${name}' (named in pyproject.toml).
      Add it to extraPackages in nix/packages.nix, and to nix/stub-nixpkgs/names.nix once the
      pinned nixpkgs is known to have it.'');
  dependencies = map fromName pyproject.dependencies;
  testDependencies = map fromName pyproject.testDependencies;
in
ps.buildPythonPackage {
  pname = pyproject.name;
  inherit (pyproject) version;
  format = "pyproject";

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [ ../pyproject.toml ../pybridge ../tests ];
  };

  build-system = [ ps.setuptools ];
  inherit dependencies;

  # pyproject.toml pins the versions tested on Debian/PyPI (torch==2.13.0 CPU, numpy<2 for
  # reticulate 1.28, ...). nixpkgs carries its own versions: numpy 2 with a reticulate >= 1.38,
  # which converts numpy 2 arrays, and torch built without CUDA (nixpkgs' default config has
  # cudaSupport = false). So every pin is relaxed to "any version". The hook matches names as the
  # wheel's METADATA writes them (huggingface_hub), so both spellings are listed.
  pythonRelaxDeps = pyproject.writtenDependencies ++ pyproject.dependencies;

  nativeCheckInputs = [ ps.pytestCheckHook ] ++ testDependencies;
  # Tests marked `r` drive Rscript through reticulate: the flake's testthat and doctor checks
  # cover that path with the wrapped R. tests/test_nix.py needs Nix itself.
  disabledTestMarks = [ "r" ];
  disabledTestPaths = [ "tests/test_nix.py" ];
  preCheck = ''
    export HOME=$(mktemp -d)
    export HF_HOME=$HOME/huggingface HF_HUB_DISABLE_TELEMETRY=1
  '';

  pythonImportsCheck = [ "pybridge" ];

  passthru = {
    pythonDependencies = dependencies;
    pythonTestDependencies = testDependencies;
  };
}
