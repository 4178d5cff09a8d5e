# The R package hfbridge (rpackage/), with the CRAN packages its DESCRIPTION names in Depends and
# Imports.
{ rPackages
, description      # nix/r-description.nix applied to ../rpackage/DESCRIPTION
}:
let
  fromName = name:
    rPackages.${name} or (throw ''
      nix/hfbridge.nix: rPackages has no '${name}' (named in rpackage/DESCRIPTION).
      Add it to nix/stub-nixpkgs/names.nix once the pinned nixpkgs is known to have it.'');
in
let
  dependencies = map fromName (description.depends ++ description.imports);
in
rPackages.buildRPackage {
  name = "${description.package}-${description.version}";
  src = ../rpackage;
  propagatedBuildInputs = dependencies;
  passthru = {
    rDependencies = dependencies;
    # The packages the tests use (Suggests), for the R wrapper of the checks and the dev shell.
    rSuggests = map fromName description.suggests;
  };
}
