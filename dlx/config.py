"""Experiment configs: load `experiments/<name>.py:get_config()`, apply `--config.KEY=VALUE`, validate."""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import pathlib
from typing import Any

import ml_collections

from dlx.errors import DlxError

# Experiments live beside the package in a source checkout (the README installs with `pip install -e`);
# `./experiments` is searched too, so a run from any checkout finds its own files.
EXPERIMENTS_DIRS = (pathlib.Path("experiments"),
                    pathlib.Path(__file__).resolve().parent.parent / "experiments")
PARALLEL_MODES = ("jit", "pmap")
EVAL_SPLITS = ("train", "val", "test")
# Experiments trained outside the step loop: `config.kind` -> the module that runs them.
KINDS = {"embeddings": "dlx.embeddings.experiment", "text_baselines": "dlx.text_baselines",
         "gradient_flow": "dlx.gradient_flow"}


def kind_module(config: ml_collections.ConfigDict):
    """The module (with `base`, `validate`, `train`, `evaluate`) that runs an experiment of
    `config.kind`: one trained outside the step loop."""
    kind = config.get("kind")
    if kind not in KINDS:
        raise DlxError(f"kind={kind!r} is not a kind of experiment; expected one of: "
                       f"{', '.join(KINDS)} (or no kind key for the step-loop trainer)")
    return importlib.import_module(KINDS[kind])


def base() -> ml_collections.ConfigDict:
    """The keys every experiment has, with their defaults; experiments start from this and set
    `model.*` and `data.*` (both need at least `name`)."""
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.model = ml_collections.ConfigDict({"name": ""})
    config.data = ml_collections.ConfigDict({"name": "", "cache_dir": "", "train_size": 0,
                                             "validation_size": 0, "augment": "",
                                             "imbalance": 1.0, "sampling": "uniform"})
    config.optim = ml_collections.ConfigDict({
        "name": "adam", "lr": 1e-3, "schedule": "constant", "warmup_steps": 0,
        "decay_steps": 0, "decay_rate": 0.1, "momentum": 0.9, "weight_decay": 0.0,
        "l1": 0.0, "l2": 0.0, "clip": 0.0, "accumulate_steps": 1, "freeze": "", "layer_decay": 1.0,
        "unfreeze_at": 0})
    config.train = ml_collections.ConfigDict({
        "steps": 1000, "batch_size": 100, "eval_batch_size": 1000, "log_every": 100,
        "eval_every": 500, "eval_splits": "test", "checkpoint_every": 1000,
        "keep_checkpoints": 3, "parallel": "jit", "devices": 0, "reports": "",
        "loss": "cross_entropy", "focal_gamma": 2.0, "class_weights": "",
        "mesh": ml_collections.ConfigDict({"data": -1, "fsdp": 1, "model": 1}),
        "fsdp_min_size": 2 ** 14, "distributed": "off", "profile_steps": 0,
        "early_stopping": ml_collections.ConfigDict({
            "metric": "", "patience": 5, "min_delta": 0.0})})
    return config


def experiment_files() -> dict[str, pathlib.Path]:
    """Name -> path of every experiment shipped in `experiments/`."""
    found: dict[str, pathlib.Path] = {}
    for directory in EXPERIMENTS_DIRS:
        for path in sorted(directory.glob("*.py")):
            if not path.stem.startswith("_"):
                found.setdefault(path.stem, path)
    return found


def resolve_path(config_arg: str) -> pathlib.Path:
    """A `--config` argument (a path, or the name of a shipped experiment) -> an existing file."""
    path = pathlib.Path(config_arg)
    if path.is_file():
        return path
    shipped = experiment_files()
    if config_arg in shipped:
        return shipped[config_arg]
    names = ", ".join(shipped) or "none"
    raise DlxError(f"config file not found: {config_arg} (expected a path to a .py file "
                   f"defining get_config(), or one of: {names})")


def describe(path: pathlib.Path) -> str:
    """First line of an experiment file's module docstring, without importing it."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text()))
    except SyntaxError:
        return "(syntax error in file)"
    return doc.strip().splitlines()[0] if doc else "(no description)"


def _import(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"dlx_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # A broken user file must still give one clear line.
        raise DlxError(f"cannot import config file {path}: {type(e).__name__}: {e}") from e
    return module


def load(config_arg: str) -> ml_collections.ConfigDict:
    """Imports the experiment file and returns its `get_config()`, named after the file."""
    path = resolve_path(config_arg)
    module = _import(path)
    if not hasattr(module, "get_config"):
        raise DlxError(f"config file {path} defines no get_config() function")
    config = module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        raise DlxError(f"{path}: get_config() returned {type(config).__name__}, "
                       f"expected ml_collections.ConfigDict")
    with config.unlocked():
        config.name = path.stem
    return config


def sweep(config_arg: str) -> dict[str, dict[str, Any]] | None:
    """The experiment's `get_sweep()`: run name -> `{dotted key: value}` set on top of
    `get_config()`; None for a single-run experiment."""
    path = resolve_path(config_arg)
    module = _import(path)
    if not hasattr(module, "get_sweep"):
        return None
    runs = module.get_sweep()
    if not (isinstance(runs, dict) and runs and all(isinstance(v, dict) for v in runs.values())):
        raise DlxError(f"{path}: get_sweep() must return a non-empty dict of run name -> "
                       f"{{config key: value}}")
    bad = [name for name in runs if not name.replace("_", "").isalnum()]
    if bad:
        raise DlxError(f"{path}: sweep run names must be letters, digits and _, got {bad[0]!r}")
    return runs


def flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """All leaf keys as dotted paths, e.g. `train.steps`."""
    keys = []
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            keys.extend(flat_keys(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _parse_value(key: str, text: str, current: Any) -> Any:
    """Parses `text` as the type of the field's current value; one-line error if it cannot."""
    def fail(expected: str) -> DlxError:
        return DlxError(f"--config.{key}={text}: expected {expected}")

    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise fail("a bool (true/false)")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise fail("an int") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise fail("a float") from None
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if current is not None and not isinstance(value, type(current)):
        if isinstance(current, (list, tuple)) and isinstance(value, (list, tuple)):
            return type(current)(value)
        raise fail(f"a {type(current).__name__}")
    return value


def _unknown_key(config: ml_collections.ConfigDict, key: str) -> DlxError:
    keys = flat_keys(config)
    close = difflib.get_close_matches(key, keys, n=4, cutoff=0.6)
    if not close:
        group = key.rsplit(".", 1)[0] if "." in key else ""
        close = [k for k in keys if k.startswith(group + ".")] if group else []
    hint = f"; did you mean: {', '.join(close)}" if close else f"; valid keys: {', '.join(keys)}"
    return DlxError(f"unknown config key '{key}'{hint}")


def _field(config: ml_collections.ConfigDict, key: str) -> tuple[ml_collections.ConfigDict, str]:
    """(parent node, leaf name) of an existing dotted leaf key; one-line error otherwise."""
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
            raise _unknown_key(config, key)
        node = node[part]
    leaf = parts[-1]
    if leaf not in node:
        raise _unknown_key(config, key)
    if isinstance(node[leaf], ml_collections.ConfigDict):
        raise DlxError(f"--config.{key} is a group; set one of its keys: "
                       f"{', '.join(key + '.' + k for k in flat_keys(node[leaf]))}")
    return node, leaf


def override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
    """Sets `config.<key>` from a command-line string, typed like the existing field."""
    node, leaf = _field(config, key)
    with node.ignore_type():
        node[leaf] = _parse_value(key, text, node[leaf])


def assign(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
    """Sets an existing `config.<key>` to a Python value (a sweep run's setting), of the field's type."""
    node, leaf = _field(config, key)
    current = node[leaf]
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    sequences = (list, tuple)
    if not (current is None or type(value) is type(current)
            or (isinstance(current, sequences) and isinstance(value, sequences))):
        raise DlxError(f"{config.get('name', '?')}: {key}={value!r} is a {type(value).__name__}, "
                       f"expected a {type(current).__name__}")
    with node.ignore_type():
        node[leaf] = value


def parse_overrides(args: list[str]) -> list[tuple[str, str]]:
    """`['--config.a.b=1', '--config.c', '2']` -> `[('a.b', '1'), ('c', '2')]`."""
    pairs, i = [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--config."):
            raise DlxError(f"unrecognised argument '{arg}' (expected --config.KEY=VALUE)")
        body = arg[len("--config."):]
        if "=" in body:
            key, value = body.split("=", 1)
        elif i + 1 < len(args):
            key, value = body, args[i + 1]
            i += 1
        else:
            raise DlxError(f"{arg} has no value (expected --config.KEY=VALUE)")
        pairs.append((key, value))
        i += 1
    return pairs


def names(text: str) -> tuple[str, ...]:
    """`"test, val"` -> `("test", "val")`: the comma-separated lists of string config keys."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise DlxError(message)


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks that the common keys exist and hold values that would fail later, before any compile."""
    if "kind" in config:
        kind_module(config).validate(config)
        return
    present = set(flat_keys(config))
    missing = [key for key in flat_keys(base()) if key not in present]
    _require(not missing, f"config {config.get('name', '?')} lacks required keys: "
                          f"{', '.join(missing)} (start experiments from dlx.config.base())")
    train = config.train
    for key in ("steps", "batch_size", "eval_batch_size", "eval_every", "log_every",
                "checkpoint_every", "keep_checkpoints"):
        _require(isinstance(train[key], int) and train[key] > 0,
                 f"train.{key} must be a positive int, got {train[key]!r}")
    _require(train.parallel in PARALLEL_MODES,
             f"train.parallel must be one of {', '.join(PARALLEL_MODES)}, got {train.parallel!r}")
    _require(isinstance(train.devices, int) and train.devices >= 0,
             f"train.devices must be an int >= 0 (0 = all local devices), got {train.devices!r}")
    _require(isinstance(config.optim.accumulate_steps, int) and config.optim.accumulate_steps > 0,
             f"optim.accumulate_steps must be a positive int, got {config.optim.accumulate_steps!r}")
    splits = names(train.eval_splits)
    _require(splits and set(splits) <= set(EVAL_SPLITS),
             f"train.eval_splits={train.eval_splits!r}: expected a comma-separated subset of "
             f"{', '.join(EVAL_SPLITS)}")
    _require("val" not in splits or config.data.validation_size > 0,
             "train.eval_splits includes val but data.validation_size is 0; set it to the number "
             "of training examples to hold out")
    from dlx.data import augment
    augment.get(config.data.augment)
    from dlx.data.batching import SAMPLINGS
    _require(config.data.sampling in SAMPLINGS, f"data.sampling={config.data.sampling!r} is not "
             f"known; expected one of: {', '.join(SAMPLINGS)}")
    from dlx.analysis import REPORTS
    unknown = [name for name in names(train.reports) if name not in REPORTS]
    _require(not unknown, f"train.reports: unknown report {', '.join(unknown)}; expected any of: "
                          f"{', '.join(REPORTS)}")
    from dlx.train.early_stopping import EarlyStopping
    EarlyStopping.from_config(config, splits)
    _require(config.optim.lr > 0, f"optim.lr must be > 0, got {config.optim.lr!r}")
    _require(config.optim.warmup_steps < train.steps,
             f"optim.warmup_steps={config.optim.warmup_steps} must be below "
             f"train.steps={train.steps}")


def build(config_arg: str, overrides: list[str], run: tuple[str, dict] | None = None
          ) -> ml_collections.ConfigDict:
    """The full CLI path: load, set a sweep `run` (name, settings), override, validate and lock.

    A sweep run is named `<experiment>/<run>`; command-line overrides apply on top of its settings.
    """
    config = load(config_arg)
    if run is not None:
        run_name, settings = run
        for key, value in settings.items():
            assign(config, key, value)
        config.name = f"{config.name}/{run_name}"
    for key, value in parse_overrides(overrides):
        override(config, key, value)
    validate(config)
    config.lock()
    return config
