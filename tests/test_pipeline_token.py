"""No token in what pybridge keeps for R: the model cache (keys and loaded models) and the jobs
R holds (issue #10, reliability case 7). The repos are gated on the mirror; only the secret
token opens them."""

from __future__ import annotations

import gc
import sys
import types

import pytest

from pybridge import embed as E
from pybridge import errors, jobs, models
from pybridge import pipeline as P
from pybridge.fixtures import task_models as tm

torch = pytest.importorskip("torch")

SECRET = "hf_pyKeptSecret5Qw8Zt30"
SKIPPED = (types.ModuleType, type, types.BuiltinFunctionType, int, float, bytes, bool)


def reachable_strings(*roots):
    """Every str reachable from ``roots`` through object references, without entering modules,
    classes or module globals (errors._secrets keeps tokens on purpose, to redact them)."""
    module_dicts = {id(vars(m)) for m in list(sys.modules.values()) if m is not None}
    seen, stack = set(), list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or id(obj) in module_dicts:
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            yield obj
        elif isinstance(obj, torch.Tensor) or isinstance(obj, SKIPPED):
            continue
        elif isinstance(obj, types.FunctionType):
            stack.extend([obj.__closure__ or (), obj.__defaults__ or (), obj.__kwdefaults__ or {}])
        else:
            stack.extend(gc.get_referents(obj))


@pytest.fixture
def gated(publish, mirror_config):
    folders = tm.ensure()
    repos = {"sentiment": "token-kept-py/sentiment", "bert": "token-kept-py/bert"}
    for name, repo in repos.items():
        publish(repo, folders[name])
    mirror_config({"gated": {repo: [SECRET] for repo in repos.values()}})
    models.cache_clear()
    yield repos
    models.cache_clear()


def test_the_model_cache_and_the_jobs_keep_no_token(hf_env, gated):
    with pytest.raises(errors.GatedRepoError):
        P.load("sentiment-analysis", gated["sentiment"], env=hf_env)
    info = P.load("sentiment-analysis", gated["sentiment"], env=hf_env, token=SECRET)
    job = P.start(
        "sentiment-analysis", ["good", "bad"], gated["sentiment"], env=hf_env, args={"top_k": 2}
    )
    embed_job = E.start(["good"], gated["bert"], env=hf_env, token=SECRET)
    hidden = E.hidden_states(["good"], gated["bert"], env=hf_env, token=SECRET)
    roots = [models._cache, info, job, embed_job, hidden]
    assert len(models._cache) == 2 and not any(SECRET in s for s in reachable_strings(*roots))
    jobs.step(job)
    jobs.step(embed_job)
    assert not any(SECRET in s for s in reachable_strings(*roots, jobs.result(job)))
    # the walk does find a string that is there
    assert any(gated["sentiment"] in s for s in reachable_strings(models._cache))
