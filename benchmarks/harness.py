"""Side-by-side timing: interleaved repeats of several contenders, medians, one JSON line each.

Each contender is a zero-argument callable that runs one full unit of work (a train step) and
blocks until it is done (`jax.block_until_ready`, or a torch op that syncs). The contenders run
in turn, round after round, so machine load drifts over all of them alike; the reported time is
the median over rounds.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Callable


def interleaved_medians(contenders: dict[str, Callable[[], object]], *, warmup: int = 3,
                        rounds: int = 15, calls_per_round: int = 3) -> dict[str, float]:
    """Median seconds per call of each contender, timed in interleaved rounds after `warmup`."""
    for run in contenders.values():
        for _ in range(warmup):
            run()
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            for _ in range(calls_per_round):
                run()
            seconds[name].append((time.perf_counter() - start) / calls_per_round)
    return {name: statistics.median(times) for name, times in seconds.items()}


def comparison(name: str, dlx_per_s: float, peer_per_s: float, unit: str, **extra) -> dict:
    """One comparison record; `ratio` is dlx throughput over the peer's (above 1: dlx faster)."""
    return {"name": name, "dlx": round(dlx_per_s, 2), "peer": round(peer_per_s, 2), "unit": unit,
            "ratio": round(dlx_per_s / peer_per_s, 3), **extra}


def machine(torch) -> dict:
    """Conditions of a measurement: torch's intra-op threads and the 1-minute load average
    (torch's timings collapse under load, so a ratio taken at a high load means little)."""
    return {"torch_threads": torch.get_num_threads(), "load_1min": round(os.getloadavg()[0], 2)}


def emit(record: dict) -> None:
    """Prints `record` as one JSON line and flushes, so partial results survive a kill."""
    print(json.dumps(record), flush=True)
    sys.stdout.flush()
