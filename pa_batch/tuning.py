"""Process-wide memory tuning for the ``pa-batch`` command: called by the CLI's entry point
only, never on import and never by the library's ``run``, so that a notebook or scheduler
that imports pa_batch keeps its own allocator."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

import pyarrow as pa


def use_returning_allocator() -> None:
    """Allocators that give a finished batch's memory back to the system.

    Arrow's jemalloc pool, returning freed pages within 200 ms, instead of Arrow's default
    (mimalloc): peak RSS about 20% lower in the benchmark for 3% more time (a pool chosen
    with ARROW_DEFAULT_MEMORY_POOL wins; a build without jemalloc keeps its default). On
    Linux with glibc, also: no transparent huge pages for this process (a 2 MiB page stays
    resident while any of it is used) and at most two malloc arenas (each thread's arena
    keeps freed memory of its own): together about 50 MiB less peak RSS, no slower.
    """
    _linux_malloc_settings()
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    with contextlib.suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(200)


_PR_SET_THP_DISABLE = 41  # prctl(2)
_M_ARENA_MAX = -8  # mallopt(3)


def _linux_malloc_settings() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)
        libc.mallopt(_M_ARENA_MAX, 2)
