# The package set of the stub: the builders and packages hfbridge's flake uses, as fake
# derivations. A fake derivation's builder would echo all its inputs, so instantiating it
# (what `nix flake check --no-build` does) forces every input: a missing attribute, a path that
# does not exist, or a wrong argument fails the check. Nothing is ever built.
{ lib, system }:
let
  names = import ./names.nix;

  # JSON-able inputs: functions dropped, derivations kept as their store paths.
  clean = value:
    if builtins.isFunction value then null
    else if builtins.isList value then map clean value
    else if builtins.isAttrs value && !(value ? outPath) then builtins.mapAttrs (_: clean) value
    else value;

  # Like stdenv.mkDerivation: every argument (and passthru) is an attribute of the result.
  fake = name: attrs:
    let
      passthru = attrs.passthru or { };
      inputs = builtins.removeAttrs attrs [ "passthru" "meta" ];
      drv = derivation {
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" "echo \"$inputs\" > $out" ];
        inputs = builtins.toJSON (clean inputs);
      };
    in
    inputs // passthru // { inherit passthru; meta = attrs.meta or { }; } // drv;

  need = what: attrs: required:
    builtins.foldl' (ok: a: if attrs ? ${a} then ok else throw "stub nixpkgs: ${what} needs `${a}`") true required;

  callPackageWith = scope: fn: overrides:
    let f = if builtins.isFunction fn then fn else import fn;
    in f (builtins.intersectAttrs (builtins.functionArgs f) scope // overrides);

  # Whether a file is in a source: looked up where a lib.fileset source came from (with
  # `nix flake check --no-build` the store copy is never written, only its path computed).
  inSource = src: file:
    if src ? origSrc then
      builtins.pathExists (src.origSrc + "/${file}") && src.filter (toString src.origSrc + "/${file}") "regular"
    else builtins.pathExists "${src}/${file}";

  pythonVersion = "3.13";

  buildPythonPackage = attrs:
    assert need "buildPythonPackage" attrs [ "pname" "version" "src" ];
    assert attrs ? format || attrs ? pyproject
      || throw "stub nixpkgs: buildPythonPackage needs `pyproject = true` or `format`";
    assert !(attrs ? format && attrs ? pyproject)
      || throw "stub nixpkgs: buildPythonPackage takes `pyproject` or `format`, not both";
    # pytestCheckHook aborts when a disabledTestPaths entry matches nothing in the source.
    assert builtins.all
      (path: builtins.match ".*::.*" path != null || inSource attrs.src path
        || throw "stub nixpkgs: disabledTestPaths: ${path} does not exist in the source of ${attrs.pname}")
      (attrs.disabledTestPaths or [ ]);
    fake "python${pythonVersion}-${attrs.pname}-${attrs.version}" attrs;

  fetchurl = { url, hash }@args:
    assert builtins.match "sha256-[A-Za-z0-9+/]{43}=" hash != null
      || throw "stub nixpkgs: fetchurl: `${hash}` is not an SRI sha256 hash";
    assert builtins.match "https://.+/[^/]+" url != null
      || throw "stub nixpkgs: fetchurl: `${url}` is not an https URL of a file";
    fake (builtins.baseNameOf url) args;

  pythonPackages = lib.genAttrs names.python
    (name: fake "python${pythonVersion}-${name}-stub" { pname = name; version = "0"; })
    // {
      inherit buildPythonPackage;
      callPackage = callPackageWith (pkgs // pythonPackages);
      pytestCheckHook = fake "python${pythonVersion}-pytest-check-hook" { };
    };

  python3 = fake "python3-${pythonVersion}.0" { } // {
    pkgs = pythonPackages;
    withPackages = f: fake "python3-${pythonVersion}.0-env" { paths = f pythonPackages; };
  };

  rPackages = lib.genAttrs names.r (name: fake "r-${name}-stub" { pname = name; })
    // {
      buildRPackage = attrs:
        assert need "rPackages.buildRPackage" attrs [ "name" "src" ];
        fake "r-${attrs.name}" attrs;
    };

  rWrapper = fake "R-wrapper" { } // {
    override = { packages }: fake "R-4.5.0-wrapper" { inherit packages; };
  };

  pkgs = {
    inherit lib system python3 rPackages rWrapper fetchurl;
    python3Packages = pythonPackages;
    callPackage = callPackageWith pkgs;
    git = fake "git-stub" { };
    ffmpeg = fake "ffmpeg-stub" { };  # decodes audio (speech to text)
    pandoc = fake "pandoc-stub" { };  # builds the vignettes
    qpdf = fake "qpdf-stub" { };  # R CMD check --as-cran
    makeWrapper = fake "make-wrapper-hook" { };

    symlinkJoin = attrs:
      assert need "symlinkJoin" attrs [ "name" "paths" ];
      fake attrs.name attrs;
    runCommand = name: env: buildCommand: fake name (env // { inherit buildCommand; });
    writeShellScriptBin = name: text: fake name { inherit text; };
    mkShell = attrs: fake (attrs.name or "nix-shell") attrs;
  };
in
pkgs
