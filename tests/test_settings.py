"""pybridge.settings: the variables of one call, resolved as huggingface_hub resolves them."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("bad", ["hf_abc\nX-Evil: 1", "hf_abc def", "hf_abc\x00", "hf_abcé"])
def test_a_token_with_a_space_a_line_break_or_non_ascii_is_refused_unseen(tmp_path, bad):
    for env, token, source in [
        ({"HF_HOME": str(tmp_path)}, bad, "token"),
        ({"HF_HOME": str(tmp_path), "HF_TOKEN": bad}, None, "HF_TOKEN"),
    ]:
        with pytest.raises(errors.InvalidArgumentError) as raised:
            settings.resolve(env, token=token)
        assert raised.value.fields == {"argument": source}
        assert "hf_abc" not in raised.value.message
    assert settings.resolve({"HF_HOME": str(tmp_path)}, token=" hf_abc\r\n").token == "hf_abc"


def test_offline_and_endpoint():
    s = settings.resolve({"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9/"})
    assert s.offline and s.endpoint == "http://127.0.0.1:9"
    assert settings.resolve({}).hf_token_arg in (False,) or settings.resolve({}).token


# ---------------------------------------------------------------------------------------------
# Every variable we honour resolves as huggingface_hub 2.4 itself resolves it (its constants,
# read in a fresh Python whose environment holds exactly these variables).

_REFERENCE = """
import json
from huggingface_hub import constants as c
print(json.dumps({"cache_dir": c.HF_HUB_CACHE, "offline": c.HF_HUB_OFFLINE,
                  "token_path": c.HF_TOKEN_PATH, "etag_timeout": c.HF_HUB_ETAG_TIMEOUT,
                  "download_timeout": c.HF_HUB_DOWNLOAD_TIMEOUT,
                  "flags": {n: getattr(c, n) for n in %r + ("HF_HUB_DISABLE_TELEMETRY",)},
                  "bars": c.HF_HUB_DISABLE_PROGRESS_BARS}))
""" % (settings.FLAG_CONSTANTS,)


def _huggingface_hub_view(env: dict) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in settings.ENV_NAMES}
    out = subprocess.run(
        [sys.executable, "-c", _REFERENCE],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


ENV_CASES = [
    {"HF_HOME": "{tmp}/a", "HUGGINGFACE_HUB_CACHE": "{tmp}/b"},
    {"HF_HOME": "{tmp}/a", "HUGGINGFACE_HUB_CACHE": "{tmp}/b", "HF_HUB_CACHE": "{tmp}/c"},
    {"XDG_CACHE_HOME": "{tmp}/xdg"},
    {"HF_HOME": "~/hf-home-test", "HF_TOKEN_PATH": "~/tok"},
    {"HF_HOME": "$HFBRIDGE_TEST_DIR/x", "HFBRIDGE_TEST_DIR": "{tmp}/dir"},
    {"HF_HOME": "{tmp}/a", "TRANSFORMERS_OFFLINE": "1"},
    {"HF_HOME": "{tmp}/a", "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"},
    {"HF_HOME": "{tmp}/a", "HF_HUB_OFFLINE": "yes"},
    {"HF_HOME": "{tmp}/a", "HF_HUB_ETAG_TIMEOUT": "3", "HF_HUB_DOWNLOAD_TIMEOUT": "0"},
    {
        "HF_HOME": "{tmp}/a",
        "HF_HUB_DISABLE_SYMLINKS": "1",
        "HF_HUB_DISABLE_XET": "true",
        "HF_HUB_DISABLE_SHARED_BLOBS": "ON",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    },
    {"HF_HOME": "{tmp}/a", "HF_HUB_DISABLE_PROGRESS_BARS": "0"},
    {"HF_HOME": "{tmp}/a", "DO_NOT_TRACK": "1"},
    {"HF_HOME": "{tmp}/a", "HF_HUB_DISABLE_TELEMETRY": "0", "DISABLE_TELEMETRY": "yes"},
]


@pytest.mark.parametrize("case", ENV_CASES, ids=lambda c: "+".join(sorted(c)))
def test_variables_resolve_as_huggingface_hub_does(case, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # "~" in a case: a temporary home
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in case.items()}
    ref = _huggingface_hub_view(env)
    token_file = Path(ref["token_path"])
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text("hf_tokenFromTheFile0123\n")
    s = settings.resolve(env)  # R's view: only these variables, not os.environ
    assert s.cache_dir == ref["cache_dir"]
    assert s.offline == ref["offline"]
    assert (s.etag_timeout, s.download_timeout) == (ref["etag_timeout"], ref["download_timeout"])
    assert s.flags == ref["flags"]
    assert (s.progress_bars is False) == (ref["bars"] is True)
    assert s.token == "hf_tokenFromTheFile0123" and s.token_source == "token file"


@pytest.mark.parametrize("value", ["soon", "-1", "1.5"])
def test_a_bad_timeout_names_the_variable(value):
    with pytest.raises(errors.InvalidArgumentError) as info:
        settings.resolve({"HF_HUB_DOWNLOAD_TIMEOUT": value})
    assert info.value.fields == {"argument": "HF_HUB_DOWNLOAD_TIMEOUT"}


def test_a_password_in_hf_endpoint_reaches_no_message_log_or_report(tmp_path, caplog):
    from pybridge import doctor, hub

    env = {"HF_HOME": str(tmp_path), "HF_ENDPOINT": "http://alice:Pa55wordXYZ@127.0.0.1:9"}
    with pytest.raises(errors.NetworkError) as raised:
        hub.repo_info("gpt2", env=env)
    assert "Pa55word" not in str(raised.value) + json.dumps(raised.value.fields)
    assert "http://***@127.0.0.1:9" in str(raised.value)
    assert doctor.report(env)["endpoint"] == "http://***@127.0.0.1:9"
    # huggingface_hub's retry lines quote the URL; its handler redacts them
    logging.getLogger("huggingface_hub.utils._http").warning(
        "thrown while requesting HEAD %s/gpt2", env["HF_ENDPOINT"]
    )
    assert caplog.messages[-1] == "thrown while requesting HEAD http://***@127.0.0.1:9/gpt2"
