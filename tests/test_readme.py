"""README.md's R code runs as written, against a mirror over the demo store (through Rscript)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from pybridge.fixtures.demo import build_demo_store

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.r


def test_every_r_block_of_the_readme_runs(tmp_path):
    readme = ROOT / "README.md"
    n_blocks = readme.read_text().count("```r\n")
    assert n_blocks >= 5
    store = tmp_path / "store"
    build_demo_store(str(store))
    env = dict(os.environ)
    env.pop("HF_TOKEN", None)
    env.pop("HF_HUB_OFFLINE", None)
    out = subprocess.run(
        [
            "Rscript",
            str(ROOT / "tests" / "r" / "readme_blocks.R"),
            str(readme),
            str(store),
            str(tmp_path / "hf-home"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-3000:]
    ok = re.findall(r"^BLOCK OK (\d+)", out.stdout, re.M)
    assert len(ok) == n_blocks, report[-3000:]
