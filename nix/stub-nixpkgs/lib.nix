# The part of nixpkgs' lib that hfbridge's flake uses, with the same behaviour where it matters:
# lib.fileset.unions rejects a path that does not exist, and lib.fileset.toSource copies only the
# chosen files to the store.
let
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
in
{
  genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);

  mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (builtins.attrNames attrs);

  concatStringsSep = builtins.concatStringsSep;

  escapeShellArg = arg: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString arg) + "'";

  fileset = {
    unions = paths:
      let
        check = i: path:
          if !builtins.isPath path then
            throw "lib.fileset.unions: Element ${toString i} is not a path: ${builtins.typeOf path}."
          else if !builtins.pathExists path then
            throw "lib.fileset.unions: Element ${toString i} (${toString path}) is a path that does not exist."
          else path;
      in
      { _fileset = builtins.genList (i: check i (builtins.elemAt paths i)) (builtins.length paths); };

    toSource = { root, fileset }:
      let
        chosen = map toString fileset._fileset;
        keep = path: _type:
          let p = toString path; in
          builtins.any (f: p == f || hasPrefix (f + "/") p || hasPrefix (p + "/") f) chosen;
      in
      # As in nixpkgs (lib.sources.cleanSourceWith): the store path, and where it came from.
      {
        _isLibCleanSourceWith = true;
        name = "source";
        origSrc = root;
        filter = keep;
        outPath = builtins.path { path = root; name = "source"; filter = keep; };
      };
  };
}
