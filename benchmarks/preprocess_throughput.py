"""Throughput of ``multiflow-preprocess`` on the shared training chains (train + train_extra).

    python benchmarks/preprocess_throughput.py                 # 8,100 chains, 2 workers
    python benchmarks/preprocess_throughput.py --limit 1000 --workers 1 2

Runs the real pipeline (pool, npz writes, journal, metadata) into a temporary folder and prints
chains, wall seconds, chains/s, and CPU seconds per chain (parent + workers), which depends far
less on what else the machine is doing than wall time does; the load average is printed too.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("MULTIFLOW_SHARED_DATA", REPO.parent / "shared" / "data")) / "structures"


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_once(files: list[Path], workers: int) -> dict:
    from data_pipelines.preprocess import main

    with tempfile.TemporaryDirectory(prefix="mf-preprocess-bench-") as tmp:
        listing = Path(tmp) / "files.txt"
        listing.write_text("\n".join(str(f) for f in files) + "\n")
        load = os.getloadavg()[0]
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["--file-list", str(listing), "--out", str(Path(tmp) / "out"), "--workers", str(workers),
                         "--no-progress"])
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        if code != 0:
            raise SystemExit(f"preprocess exited with {code}")
        with open(Path(tmp) / "out" / "metadata.csv") as handle:
            chains = sum(1 for _ in handle) - 1
    return {"chains": chains, "seconds": seconds, "rate": chains / seconds, "workers": workers,
            "cpu_ms": 1000 * cpu / max(chains, 1), "load": load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding train/ and train_extra/")
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N files")
    args = parser.parse_args(argv)
    files = sorted(p for sub in ("train", "train_extra") for p in (args.data / sub).glob("*.pdb.gz"))
    if not files:
        print(f"no training files under {args.data}", file=sys.stderr)
        return 1
    files = files[: args.limit] if args.limit else files
    print(f"{len(files)} files from {args.data}; {os.cpu_count()} CPUs; load average before each run shown")
    print(f"{'chains':>7} {'seconds':>8} {'chains/s':>9} {'workers':>8} {'CPU ms/chain':>13} {'load':>6}")
    for workers in args.workers:
        r = run_once(files, workers)
        print(f"{r['chains']:>7} {r['seconds']:>8.1f} {r['rate']:>9.1f} {r['workers']:>8} {r['cpu_ms']:>13.1f} "
              f"{r['load']:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
