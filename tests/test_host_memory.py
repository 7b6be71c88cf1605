"""host_memory: a large block freed and allocated again is reused without page faults once
DLX_KEEP_FREED_MEMORY=1 applied the settings, and nothing changes without it (each case in a
fresh process, since the setting is process-wide)."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from dlx import host_memory

FAULTS_SCRIPT = """
import ctypes, resource, sys
from dlx import host_memory
applied = host_memory.from_environment({"DLX_KEEP_FREED_MEMORY": sys.argv[1]})
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 64 << 20
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, min(faults[1:]))
"""

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"), reason="needs glibc")


def faults_after_reuse(setting: str) -> tuple[str, int]:
    """(whether the settings took effect, the fewest page faults of touching a freed 64 MiB
    block allocated again) in a new process with DLX_KEEP_FREED_MEMORY=setting."""
    out = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT, setting], capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0], int(out[1])


@glibc
def test_a_freed_block_is_reused_without_page_faults():
    applied, faults = faults_after_reuse("1")
    assert applied == "True" and faults < 100
    # glibc's default maps a block this size afresh each time: one fault per 4 KiB page.
    applied, faults = faults_after_reuse("0")
    assert applied == "False" and faults > (64 << 20) // 4096 // 2


def test_off_unless_the_environment_variable_turns_it_on():
    for setting in ("", "0", "off", "False", " no "):
        assert not host_memory.from_environment({"DLX_KEEP_FREED_MEMORY": setting})
    assert not host_memory.from_environment({})
