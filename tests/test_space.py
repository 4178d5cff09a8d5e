"""A Space for the example app: space_scaffold() from R, its Dockerfile checked, and
hub_push_space() to the mirror, read back with the real huggingface_hub client.

Docker cannot run here, so the Dockerfile is parsed instead: its instructions are valid, the port
it exposes and serves is the README's app_port, it runs as UID 1000, it installs only Debian
packages of tools/apt-packages.txt and Python packages pinned by pyproject.toml, and it
downloads from no address but PyTorch's CPU index (for the pinned torch).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import huggingface_hub as hh
import huggingface_hub.constants
import pytest
import tomllib
import yaml

pytestmark = pytest.mark.r

ROOT = Path(__file__).resolve().parent.parent
WRITE = "hf_spaceTestWriteToken0123456"
INSTRUCTIONS = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}


def dockerfile_instructions(text: str) -> list:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    out, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        keyword, _, args = current.strip().partition(" ")
        out.append((keyword, args.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return out


def readme_yaml(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md has no YAML header"
    return yaml.safe_load(match.group(1))


def project_pins() -> list:
    """Every requirement of pyproject.toml: the dependencies and each extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {}).values()
    return [r for reqs in [project["dependencies"], *extras] for r in reqs]


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """The folder space_scaffold() writes, from Rscript."""
    out = tmp_path_factory.mktemp("space") / "my-space"
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    code = (
        f"hfbridge::space_scaffold('{out}', title = 'Sentiment in R', emoji = '\U0001f4ca',"
        f" color_from = 'blue', color_to = 'green', source = '{ROOT}')"
    )
    res = subprocess.run(
        ["Rscript", "-e", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return out


def test_the_dockerfile_is_valid_and_runs_the_app_on_the_readme_port_as_uid_1000(space):
    steps = dockerfile_instructions((space / "Dockerfile").read_text())
    assert steps[0][0] == "FROM"
    assert {keyword for keyword, _ in steps} <= INSTRUCTIONS
    meta = readme_yaml((space / "README.md").read_text(encoding="utf-8"))
    assert meta["sdk"] == "docker"
    assert (meta["title"], meta["emoji"], meta["colorFrom"], meta["colorTo"]) == (
        "Sentiment in R",
        "\U0001f4ca",
        "blue",
        "green",
    )
    exposed = [args for keyword, args in steps if keyword == "EXPOSE"]
    assert exposed == [str(meta["app_port"])]
    cmd = json.loads(next(args for keyword, args in steps if keyword == "CMD"))
    assert f"port = {meta['app_port']}" in cmd[-1] and "host = '0.0.0.0'" in cmd[-1]
    users = [(i, args) for i, (keyword, args) in enumerate(steps) if keyword == "USER"]
    assert users[-1][1] == "1000"
    assert all(
        keyword != "RUN" for keyword, _ in steps[users[-1][0] :]
    )  # nothing runs as root after
    for keyword, args in steps:
        if keyword == "COPY":
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            assert all((space / s).exists() for s in sources), args
    built = [p for p in space.rglob("*") if p.suffix in (".o", ".so", ".pyc")]
    assert built == []  # sources only: the image builds them
    assert (space / "app" / "app.R").read_text() == (
        ROOT / "rpackage/inst/apps/hfbridge-demo/app.R"
    ).read_text()


def test_the_dockerfile_installs_only_what_the_project_pins(space):
    text = (space / "Dockerfile").read_text()
    runs = [args for keyword, args in dockerfile_instructions(text) if keyword == "RUN"]
    apt_list = set((ROOT / "tools/apt-packages.txt").read_text().split())
    installed_apt = []
    pip_requirements = []
    for run in runs:
        for command in run.split("&&"):
            words = command.split()
            if words[:2] == ["apt-get", "install"]:
                installed_apt += [w for w in words[2:] if not w.startswith("-")]
            if len(words) > 2 and words[0].endswith("/pip") and words[1] == "install":
                skip_next = False
                for w in words[2:]:
                    if skip_next:
                        skip_next = False
                    elif w in ("--index-url", "--extra-index-url"):
                        skip_next = True
                    elif not w.startswith("-"):
                        pip_requirements.append(w)
    assert installed_apt and set(installed_apt) <= apt_list
    pins = project_pins()
    local = [r for r in pip_requirements if r.startswith("/")]
    assert local == ["/opt/hfbridge"]  # pybridge itself, whose dependencies are the pins
    assert (space / "hfbridge/pyproject.toml").read_bytes() == (
        ROOT / "pyproject.toml"
    ).read_bytes()
    assert all(r in pins for r in pip_requirements if r not in local), pip_requirements
    assert "torch==2.13.0" in pip_requirements
    assert set(re.findall(r"https?://\S+", text)) == {"https://download.pytorch.org/whl/cpu"}
    assert "--no-build-isolation" in text  # no unpinned setuptools fetched to build pybridge


def test_hub_push_space_creates_a_docker_space_with_the_files(
    space, mirror, mirror_config, hf_env, monkeypatch
):
    mirror_config({"write": {"spaces/apptest/*": [WRITE]}})
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env.update(hf_env, HF_TOKEN=WRITE)
    code = (
        "res <- hfbridge::hub_push_space(commandArgs(TRUE)[1], 'apptest/shiny-demo', "
        "quiet = TRUE); cat(res$commit_oid, res$url)"
    )
    res = subprocess.run(
        ["Rscript", "-e", code, str(space)], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    commit, url = res.stdout.split()[-2:]
    assert url == f"{mirror.url}/spaces/apptest/shiny-demo"
    assert WRITE not in res.stdout + res.stderr
    # quiet: no bars, and none of huggingface_hub's advice on large uploads (the folder holds
    # more than its 200 files)
    assert "large folder" not in res.stderr, res.stderr[-2000:]

    monkeypatch.setattr(hh.constants, "HF_HUB_DISABLE_XET", True)
    api = hh.HfApi(endpoint=mirror.url, token=WRITE)
    info = api.repo_info("apptest/shiny-demo", repo_type="space")
    assert info.sdk == "docker"
    assert info.sha == commit
    local = sorted(
        str(p.relative_to(space))
        for p in space.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    remote = sorted(
        f
        for f in api.list_repo_files("apptest/shiny-demo", repo_type="space")
        if f != ".gitattributes"
    )
    assert remote == local
    for name in ("Dockerfile", "README.md", "app/app.R", "hfbridge/pyproject.toml"):
        path = hh.hf_hub_download(
            "apptest/shiny-demo",
            name,
            repo_type="space",
            endpoint=mirror.url,
            token=WRITE,
            cache_dir=Path(hf_env["HF_HOME"]) / "hub",
        )
        assert Path(path).read_bytes() == (space / name).read_bytes(), name
