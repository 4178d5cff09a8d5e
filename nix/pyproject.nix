# Reads pyproject.toml so that the Nix package follows it: name, version, and the distribution
# names of the dependencies (with the `models` extra) and of the `test` extra, normalised as
# nixpkgs names its Python attributes (lower case, runs of '_' '.' '-' written '-'). Version pins
# are dropped here: the package relaxes them (pythonRelaxDeps) because nixpkgs carries its own
# versions.
# Only builtins, so that it evaluates the same against nixpkgs and against nix/stub-nixpkgs.
pyprojectFile:
let
  project = (builtins.fromTOML (builtins.readFile pyprojectFile)).project;
  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" "_" "." ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" "-" "-" ];
  normalise = builtins.replaceStrings upper lower;
  # The name as written in the requirement (as it appears in the wheel's Requires-Dist).
  written = requirement:
    let m = builtins.match "[[:space:]]*([A-Za-z0-9][A-Za-z0-9._-]*).*" requirement;
    in if m == null then throw "nix/pyproject.nix: cannot read the requirement '${requirement}'"
       else builtins.head m;
  distribution = requirement: normalise (written requirement);
  extras = project.optional-dependencies or { };
  # The flake's Python is the whole stack: the dependencies, the `models` extra (torch,
  # transformers) and the `serve` extra (the inference server), which pip installs only on
  # request. The `serve` extra names pybridge[models] itself: that is the package being built.
  runtime = (project.dependencies or [ ]) ++ (extras.models or [ ])
    ++ builtins.filter notSelf (extras.serve or [ ]);
  # The `test` extra names pybridge[models,serve] itself, likewise.
  notSelf = requirement: distribution requirement != normalise project.name;
in
{
  name = project.name;
  version = project.version;
  dependencies = map distribution runtime;
  # For pythonRelaxDeps, which matches the names as written in the wheel's METADATA.
  writtenDependencies = map written runtime;
  testDependencies = map distribution (builtins.filter notSelf (extras.test or [ ]));
}
