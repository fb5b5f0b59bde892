"""Process-wide settings the ``multiflow`` command applies before any work (CPU speed).

* ``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads otherwise spin; on a shared 2-core machine
  a spinning pool made a 2-thread forward pass ~20x slower (benchmarks/denoiser_speed.py).
  Must be set before torch is imported; a value the user set is kept.
* glibc's allocator serves every block from its heap (no mmap) and keeps freed memory instead
  of handing it back to the kernel: the sampler and the training step allocate and free the
  same large temporaries (edge features are [B, N, K, 256]) again and again, and each mmap-ed
  block came back from the kernel one page fault at a time (about 100 ms per 77 MB tensor
  here). Measured on this 2-core VM, 1 thread, other jobs running: a training step of
  ``experiment=cpu_small`` (~1,500 residues) 2.08 -> 1.68 s CPU (peak RSS 1.56 -> 1.70 GB);
  ``multiflow sample --lengths 100 --num_samples 4 --num_steps 30`` 24.0 -> 22.6 s CPU
  (system time 4.8 -> 2.3 s). The cost is that the process keeps its peak memory until it
  exits. Set ``MULTIFLOW_KEEP_MALLOC=1`` to leave the allocator alone; other C libraries are
  untouched.

Python API users can call :func:`tune_process` themselves.

:func:`dataloader_worker_init` is the ``worker_init_fn`` of every DataLoader the package builds:
worker processes leave SIGTERM and Ctrl-C to the main process (see its docstring).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of freed heap at the top instead of trimming it


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
    # every block from the heap, none from mmap (glibc still falls back to mmap if the heap cannot grow):
    # an mmap-ed block goes back to the kernel when freed and faults in again, page by page, next time
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def tune_process() -> None:
    """Apply both settings; call before importing torch."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    tune_allocator()


def dataloader_worker_init(worker_id: int) -> None:
    """DataLoader workers ignore SIGTERM and Ctrl-C; the main process handles them.

    A cluster's preemption (SLURM, ``kill -- -PGID``) signals every process of the job. A worker
    killed by it makes the main process fail with "DataLoader worker ... killed by signal" before
    Lightning's SIGTERM handling can save the current step (``training.builders.save_on_interrupt``);
    the main process stops its workers itself when it stops. Then seeds the worker as Lightning would
    have (``seed_everything(workers=True)``), which Lightning does only for loaders without a
    ``worker_init_fn``.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id)
