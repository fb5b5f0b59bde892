"""Process-wide settings the ``multiflow`` command applies before any work (CPU speed).

* ``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads otherwise spin; on a shared 2-core machine
  a spinning pool made a 2-thread forward pass ~20x slower (benchmarks/denoiser_speed.py).
  Must be set before torch is imported; a value the user set is kept.
* glibc's allocator keeps freed memory instead of handing it back to the kernel: the
  sampler allocates and frees the same large temporaries at every step, and returning them
  made each step page-fault them in again. Measured here (``multiflow sample --lengths 100
  --num_samples 4 --num_steps 30``, 1 thread, other jobs running): system time 4.8 s -> 2.0 s,
  user + system 24.6 s -> 22.3 s (-9 %).
  The cost is that the process keeps its peak memory until it exits. Set
  ``MULTIFLOW_KEEP_MALLOC=1`` to leave the allocator alone; other C libraries are untouched.

Python API users can call :func:`tune_process` themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of freed heap at the top instead of trimming it
_MMAP_THRESHOLD = 32 << 20  # blocks below 32 MiB (glibc's maximum) come from the heap, not mmap


def tune_allocator() -> bool:
    """Ask glibc to keep freed memory for reuse; True if it accepted, False elsewhere or if opted out."""
    if os.environ.get("MULTIFLOW_KEEP_MALLOC") == "1":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def tune_process() -> None:
    """Apply both settings; call before importing torch."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    tune_allocator()
