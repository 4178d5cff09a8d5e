# Reads rpackage/DESCRIPTION so that the Nix package follows it as developers add dependencies:
# the version, and the CRAN packages named in Depends, Imports and Suggests (base R's own packages
# left out, version constraints dropped, '.' turned into '_' as rPackages names them).
# Only builtins, so that it evaluates the same against nixpkgs and against nix/stub-nixpkgs.
descriptionFile:
let
  text = builtins.readFile descriptionFile;
  # A DCF continuation line starts with white space: fold it into the field above it.
  folded = builtins.replaceStrings [ "\r" "\n " "\n\t" ] [ "" " " " " ] text;
  lines = builtins.filter builtins.isString (builtins.split "\n" folded);
  field = name:
    let hits = builtins.filter (m: m != null) (map (builtins.match "${name}:[[:space:]]*(.*)") lines);
    in if hits == [ ] then "" else builtins.head (builtins.head hits);
  basePackages = [
    "R" "base" "compiler" "datasets" "graphics" "grDevices" "grid" "methods" "parallel"
    "splines" "stats" "stats4" "tcltk" "tools" "utils"
  ];
  packageNames = value:
    let
      entries = builtins.filter builtins.isString (builtins.split "," value);
      matches = map (builtins.match "[[:space:]]*([A-Za-z][A-Za-z0-9.]*).*") entries;
      names = map builtins.head (builtins.filter (m: m != null) matches);
    in map (builtins.replaceStrings [ "." ] [ "_" ])
      (builtins.filter (n: !(builtins.elem n basePackages)) names);
in
{
  package = field "Package";
  version = field "Version";
  depends = packageNames (field "Depends");
  imports = packageNames (field "Imports");
  suggests = packageNames (field "Suggests");
}
