"""launch/: the cluster scripts parse (bash -n, shellcheck where installed) and tpu_vm.sh
refuses to run without a subcommand."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import REPO

SCRIPTS = sorted([*(REPO / "launch").glob("*.sh"), *(REPO / "launch").glob("*.sbatch")])


def test_the_launchers_are_there():
    assert {path.name for path in SCRIPTS} >= {"tpu_vm.sh", "slurm.sbatch"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_parses(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", "--shell=bash", str(script)], capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("args", [[], ["bogus"]], ids=["no-args", "unknown-subcommand"])
def test_tpu_vm_without_a_subcommand_prints_usage_and_calls_no_gcloud(tmp_path, args):
    calls = tmp_path / "gcloud_calls"
    fake = tmp_path / "bin" / "gcloud"
    fake.parent.mkdir()
    fake.write_text(f'#!/usr/bin/env bash\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
               TPU_NAME="test-tpu")
    result = subprocess.run(["bash", str(REPO / "launch" / "tpu_vm.sh"), *args],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ") and "create|setup|train" in result.stderr
    assert not calls.exists()


def test_tpu_vm_train_names_the_missing_variable(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("CONFIG", "WORKDIR")}
    env.update(TPU_NAME="test-tpu", PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "gcloud").write_text("#!/usr/bin/env bash\nexit 99\n")
    (tmp_path / "gcloud").chmod(0o755)
    result = subprocess.run(["bash", str(REPO / "launch" / "tpu_vm.sh"), "train"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "CONFIG is not set" in result.stderr
