"""Shared fixtures: one MNIST-1D cache per test session, and a CLI runner in a fresh process."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
MLP_CONFIG = str(REPO / "experiments" / "mnist1d_mlp.py")

jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `slow(seconds)` go first, longest first: pytest-xdist deals the first quarter
    of the tests out in turn, so the long ones run side by side from the start instead of
    trailing at the end of the suite."""
    def seconds(item: pytest.Item) -> float:
        marker = item.get_closest_marker("slow")
        return marker.args[0] if marker else 0.0
    items.sort(key=seconds, reverse=True)


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory) -> pathlib.Path:
    """A data cache shared by all xdist workers of the session (generation is atomic)."""
    root = tmp_path_factory.getbasetemp()
    shared = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "dlx-data"
    os.environ["DLX_DATA_DIR"] = str(shared)
    return shared


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory) -> pathlib.Path:
    """One persistent XLA compilation cache for the session's processes (the CLI tests compile
    the same steps again and again); it changes no result, only skips recompiling."""
    root = tmp_path_factory.getbasetemp()
    cache = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "jax-cache"
    settings = {"jax_compilation_cache_dir": str(cache),
                "jax_persistent_cache_min_compile_time_secs": 0,
                "jax_persistent_cache_min_entry_size_bytes": 0}
    for name, value in settings.items():
        os.environ[name.upper()] = str(value)  # For the processes the tests start.
        jax.config.update(name, value)
    return cache


def emulated_devices_flags(devices: int) -> str:
    """XLA_FLAGS for `devices` CPU devices. XLA aborts a CPU collective whose device threads do
    not all arrive within 40 s, which 8 emulated devices on 2 busy cores can exceed; the limit
    is raised so that only a real hang fails (the tests' own timeouts still apply)."""
    return (f"--xla_force_host_platform_device_count={devices} "
            f"--xla_cpu_collective_call_terminate_timeout_seconds=600")


# XLA flag for tests that compile many programs and compare them only with one another: the
# CPU backend's cheapest optimisation level roughly halves compile time.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def run_cli(*args: str, devices: int = 1, script: list[str] | None = None,
            timeout: int = 300, xla_flags: str = "") -> subprocess.CompletedProcess:
    """Runs `dlx ARGS` (or `python SCRIPT... ARGS`) in a new process with `devices` CPU devices
    (and `xla_flags` added to XLA_FLAGS)."""
    env = dict(os.environ, XLA_FLAGS=f"{emulated_devices_flags(devices)} {xla_flags}".strip(),
               JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    command = [sys.executable] + (script or ["-m", "dlx.cli"]) + list(args)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=REPO)


def launch(*command: str, processes: int = 2, **env: str) -> subprocess.CompletedProcess:
    """`launch/local_multiprocess.sh PROCESSES --cpu-devices 4 -- python COMMAND...` (compiling
    with FAST_COMPILE; `env` added to the environment)."""
    full_env = dict(os.environ, XLA_FLAGS=FAST_COMPILE, PYTHONUNBUFFERED="1",
                    DLX_LAUNCH_GRACE_S="3", **env)
    return subprocess.run(["bash", str(REPO / "launch" / "local_multiprocess.sh"), str(processes),
                           "--cpu-devices", "4", "--", sys.executable, *command],
                          capture_output=True, text=True, env=full_env, timeout=600, cwd=REPO)


def train_losses(workdir: pathlib.Path) -> list[float]:
    """The `train_loss` of every logged step in `workdir/metrics.jsonl`, in order."""
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [row["train_loss"] for row in rows if "train_loss" in row]


def train_args(workdir: pathlib.Path, *overrides: str, config: str = MLP_CONFIG) -> list[str]:
    return ["train", "--config", config, "--workdir", str(workdir), *overrides]


def train_experiment(workdir: pathlib.Path, name: str, *overrides: str) -> dict:
    """Trains `experiments/NAME.py` through the CLI; asserts success and returns its summary."""
    config = str(REPO / "experiments" / f"{name}.py")
    result = run_cli(*train_args(workdir, *overrides, config=config))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def load_benchmark(name: str):
    """`benchmarks/NAME.py` imported once per process as the module `benchmark_NAME`."""
    module_name = f"benchmark_{name}"
    if module_name not in sys.modules:
        path = REPO / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # Flax's dataclasses look their module up there.
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return sys.modules[module_name]

