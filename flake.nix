# hfbridge pinned with Nix: R with hfbridge, a Python with pybridge and its Hugging Face stack,
# and RETICULATE_PYTHON pointing at exactly that Python. See the Nix section of README.md.
#
#   nix develop          both toolchains; pybridge from the work tree; HF_HOME in build/hf-home
#   nix run              the demo (examples/quickstart.R through the wrapped Rscript)
#   nix flake check      pytest (pybridge's check phase), testthat and hfbridge_doctor() through
#                        the wrapped R, offline
#
# One input, nixpkgs, pinned by flake.lock. rstats-on-nix/nixpkgs is nixpkgs with CRAN frozen at a
# date, as rix uses it. `nix flake lock --update-input nixpkgs` refreshes the pin after the date
# below is changed. tools/nix-check.sh evaluates this flake offline against nix/stub-nixpkgs.
{
  description = "hfbridge: the Hugging Face workflow for R through reticulate, with R and Python pinned together";

  inputs.nixpkgs.url = "github:rstats-on-nix/nixpkgs/2026-02-09";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems
        (system: f (import ./nix/packages.nix { pkgs = nixpkgs.legacyPackages.${system}; }));
    in
    {
      packages = forAllSystems (p: {
        inherit (p) pybridge hfbridge;
        python = p.pythonEnv;
        default = p.rWithHfbridge;
      });

      devShells = forAllSystems (p: { default = p.devShell; });

      checks = forAllSystems (p: {
        inherit (p) pybridge testthat doctor;
      });

      apps = forAllSystems (p: {
        default = {
          type = "app";
          program = "${p.demo}/bin/hfbridge-demo";
          meta.description = "The hfbridge demo: examples/quickstart.R through the wrapped Rscript";
        };
      });
    };
}
