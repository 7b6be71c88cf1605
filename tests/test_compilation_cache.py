"""The CLI's persistent compilation cache: where it goes, when it is off, that a run fills it."""

import os
import pathlib
import subprocess
import sys

import pytest

from conftest import REPO
from dlx import compilation_cache


@pytest.mark.parametrize("environ, expected", [
    ({"DLX_DATA_DIR": "/data"}, "/data/jax-cache"),
    ({"DLX_DATA_DIR": "/data", "DLX_COMPILATION_CACHE": "1"}, "/data/jax-cache"),
    ({"DLX_COMPILATION_CACHE": "/elsewhere"}, "/elsewhere"),
    ({"DLX_COMPILATION_CACHE": "0"}, None),
    ({"DLX_COMPILATION_CACHE": "off", "DLX_DATA_DIR": "/data"}, None),
    ({"JAX_COMPILATION_CACHE_DIR": "/mine", "DLX_COMPILATION_CACHE": "/elsewhere"}, None)])
def test_directory_follows_the_environment(environ, expected):
    path = compilation_cache.directory(environ)
    assert (None if path is None else str(path)) == expected


def test_default_directory_is_under_the_user_cache():
    assert compilation_cache.directory({}) == pathlib.Path.home() / ".cache" / "dlx" / "jax-cache"


def test_a_cli_run_fills_the_cache_and_an_uncreatable_one_is_skipped(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(JAX_PLATFORMS="cpu", DLX_DATA_DIR=str(tmp_path / "data"))
    command = [sys.executable, "-m", "dlx.cli", "train", "--config",
               str(REPO / "experiments" / "xor_perceptron.py"), "--workdir", str(tmp_path / "run"),
               "--config.train.steps=5"]
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert any((tmp_path / "data" / "jax-cache").iterdir())
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert compilation_cache.enable({"DLX_COMPILATION_CACHE": str(blocker / "cache")}) is None
