# An offline stand-in for nixpkgs, for tools/nix-check.sh only: it has exactly the attributes
# hfbridge's flake uses, and its derivations are fake (they would only echo their inputs), so
# `nix flake check --no-build --override-input nixpkgs path:nix/stub-nixpkgs` proves that the
# flake evaluates, that every attribute it reaches for exists here, and that every file it
# references exists in the git tree. It proves nothing about the real nixpkgs beyond the names
# listed in names.nix (see the Nix section of README.md).
{
  description = "Offline stub of nixpkgs for evaluating hfbridge's flake";

  outputs = { self }:
    let
      lib = import ./lib.nix;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ]
        (system: import ./pkgs.nix { inherit lib system; });
    };
}
