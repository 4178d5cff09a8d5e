from pybridge import errors, settings


def test_token_order_and_redaction(tmp_path):
    (tmp_path / "token").write_text("hf_fromfile123456789\n")
    env = {"HF_HOME": str(tmp_path)}
    s = settings.resolve(env)
    assert s.token == "hf_fromfile123456789" and s.token_source == "token file"
    assert s.cache_dir == str(tmp_path / "hub")
    s = settings.resolve({**env, "HF_TOKEN": "hf_env0000000000"}, token="explicit-secret")
    assert s.token == "explicit-secret"
    err = errors.AuthError("bad token explicit-secret and hf_fromfile123456789", repo_id="a/b")
    assert "explicit-secret" not in str(err) and "hf_fromfile" not in str(err)
    assert err.code == "auth" and isinstance(err, PermissionError)


def test_offline_and_endpoint():
    s = settings.resolve({"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9/"})
    assert s.offline and s.endpoint == "http://127.0.0.1:9"
    assert settings.resolve({}).hf_token_arg in (False,) or settings.resolve({}).token
