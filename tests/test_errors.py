"""pybridge's errors: built-in bases for Python callers, and safe messages for R."""

import pytest

from pybridge import errors, hub


def test_python_callers_catch_hub_errors_as_builtins(hf_env, publish, tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config.json").write_text("{}")
    publish("errs/tiny", tmp_path / "repo")
    with pytest.raises(FileNotFoundError) as raised:
        hub.download("errs/tiny", "missing.json", env=hf_env)
    assert raised.value.code == "entry_not_found"
    assert raised.value.fields["filename"] == "missing.json"
    with pytest.raises(ValueError):
        hub.download("", "config.json", env=hf_env)


@pytest.mark.parametrize(
    "cls, base",
    [
        (errors.RepoNotFoundError, FileNotFoundError),
        (errors.GatedRepoError, PermissionError),
        (errors.AuthError, PermissionError),
        (errors.NetworkError, ConnectionError),
        (errors.InvalidFileError, ValueError),
        (errors.PythonEnvironmentError, ImportError),
    ],
)
def test_each_error_is_its_builtin_and_keeps_its_message(cls, base):
    err = cls("what happened", path="/x")
    assert isinstance(err, base) and str(err) == "what happened" and err.fields == {"path": "/x"}


def test_call_turns_a_foreign_exception_into_a_python_error_r_can_read():
    errors.register_secret("sekrit-token-value")

    def fails():
        raise OSError("bad\x00name sekrit-token-value")

    with pytest.raises(errors.PythonError) as raised:
        errors.call(fails)
    err = raised.value
    assert err.code == "python" and err.fields == {"python_type": "OSError"}
    assert "\x00" not in err.message and "\\0" in err.message
    assert "sekrit" not in err.message
    assert err.__suppress_context__  # the original's text (NUL, token) is not chained


def test_call_passes_results_and_pybridge_errors_through():
    assert errors.call(lambda a, b=1: a + b, 2, b=3) == 5
    with pytest.raises(errors.InvalidArgumentError):
        errors.call(lambda: (_ for _ in ()).throw(errors.InvalidArgumentError("no")))


def test_a_url_query_never_reaches_a_message():
    # pre-signed storage URLs (an LFS upload's) carry their key in the query
    err = errors.InvalidArgumentError(
        "400 for url 'http://127.0.0.1:1/lfs/upload/abc?key=uPX8VXFa&x=1' (see https://h/a?b=c)"
    )
    assert str(err) == "400 for url 'http://127.0.0.1:1/lfs/upload/abc?***' (see https://h/a?***)"


def test_a_message_quoting_a_huge_argument_is_shortened_and_keeps_both_ends():
    err = errors.InvalidArgumentError("start " + "x" * 10**6 + " end")
    assert len(str(err)) < errors.MAX_MESSAGE + 100
    assert str(err).startswith("start x") and str(err).endswith("x end")


def test_a_file_name_too_long_is_an_invalid_argument(tmp_path):
    with pytest.raises(errors.InvalidArgumentError, match="too long"):
        errors.call(open, str(tmp_path / ("x" * 300)), "w")
