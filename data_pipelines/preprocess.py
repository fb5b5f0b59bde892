"""``multiflow-preprocess``: PDB/mmCIF files -> processed chains, metadata, failure log, splits.

    multiflow-preprocess STRUCTURES/ more.cif.gz --file-list paths.txt --out processed/ \\
        --min-length 40 --max-length 512 --split-manifest manifest.tsv --workers 8

Writes the layout of docs/DESIGN.md ("Processed data layout"). Resumable: a rerun skips
sources already done (same path and content hash, npz files present) and sources that failed
(unless ``--retry-failed``); see :mod:`data_pipelines.state` for how a killed run is recovered.
Options that change what a source produces (filters, ``--chains``, ``--model``) are stored in
``options.json``; a rerun with different ones stops and asks for ``--overwrite`` or a new folder.
Split options are stored too and reused when a rerun gives none. Exit code 0 when the run
finished (bad inputs are logged in failures.tsv, never fatal), 2 on a usage error, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from data_pipelines.records import ProcessOptions, SourceResult
from data_pipelines.sources import assign_stems, discover, sha256_of
from data_pipelines.splits import SplitSpec, Splitter
from data_pipelines.state import Journal, clear_outputs, load_records, remove_temp_files, write_snapshot
from multiflow.errors import ConfigError

logger = logging.getLogger("data_pipelines.preprocess")
SNAPSHOT_SECONDS = 60.0
"""How often the snapshot files are rewritten during a long run."""


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="multiflow-preprocess", description="Turn PDB/mmCIF files into processed training chains.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="*", help="folders (searched recursively) and/or structure files")
    p.add_argument("--file-list", action="append", default=[], metavar="TXT",
                   help="text file with one path per line (relative to the list's folder); repeatable")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--min-length", type=int, default=1, help="drop chains with fewer residues")
    p.add_argument("--max-length", type=int, default=None, help="drop chains with more residues (default: no limit)")
    p.add_argument("--max-coil-fraction", type=float, default=1.0, help="drop chains with more coil (P-SEA), 0..1")
    p.add_argument("--max-missing-fraction", type=float, default=1.0,
                   help="drop chains with more missing residues (no N/CA/C, or in numbering gaps), 0..1")
    p.add_argument("--chains", default=None, metavar="A,B", help="take only these chain ids from every file")
    p.add_argument("--model", type=int, default=1, help="1-based model number (NMR ensembles)")
    p.add_argument("--split-manifest", default=None, metavar="TSV", help="TSV with chain_id and split columns")
    p.add_argument("--cluster-file", default=None, metavar="TSV", help="representative<TAB>member clusters")
    p.add_argument("--val-fraction", type=float, default=None, help="fraction of clusters for val (with --cluster-file)")
    p.add_argument("--test-fraction", type=float, default=None, help="fraction of clusters for test")
    p.add_argument("--seed", type=int, default=None, help="seed of the cluster split (default 0)")
    p.add_argument("--workers", type=int, default=_cpu_count(), help="worker processes")
    p.add_argument("--overwrite", action="store_true", help="delete earlier outputs in --out and start over")
    p.add_argument("--retry-failed", action="store_true", help="redo sources that failed in an earlier run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="show per-file warnings (missing atoms...)")
    return p


def options_from_args(args: argparse.Namespace) -> ProcessOptions:
    chains = None
    if args.chains is not None:
        chains = tuple(dict.fromkeys(c.strip() for c in args.chains.split(",") if c.strip()))
        if not chains:
            raise ConfigError(f"--chains {args.chains!r} names no chain; expected e.g. --chains A,B")
    if args.min_length < 1 or (args.max_length is not None and args.max_length < args.min_length):
        raise ConfigError(f"need 1 <= --min-length <= --max-length, got {args.min_length}, {args.max_length}")
    for name in ("max_coil_fraction", "max_missing_fraction"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must lie in [0, 1], got {getattr(args, name)}")
    if args.model < 1:
        raise ConfigError(f"--model must be a positive 1-based number, got {args.model}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    return ProcessOptions(args.min_length, args.max_length, args.max_coil_fraction, args.max_missing_fraction,
                          chains, args.model)


def split_spec(args: argparse.Namespace, stored: dict | None) -> SplitSpec:
    """The split options of this run; those stored by an earlier run when none are given."""
    given = {"manifest": args.split_manifest, "cluster_file": args.cluster_file, "val_fraction": args.val_fraction,
             "test_fraction": args.test_fraction, "seed": args.seed}
    if all(v is None for v in given.values()) and stored:
        return SplitSpec(**stored)
    for key in ("manifest", "cluster_file"):
        if given[key] is not None:
            given[key] = str(Path(given[key]).resolve())
    return SplitSpec(**{k: v for k, v in given.items() if v is not None})


@dataclass
class RunStats:
    found: int = 0
    up_to_date: int = 0
    sources_done: int = 0
    chains: int = 0
    filtered: int = 0
    failed: int = 0
    seconds: float = 0.0
    missing_sources: list[str] = field(default_factory=list)

    def add(self, result: SourceResult) -> None:
        self.sources_done += 1
        self.chains += len(result.rows)
        self.filtered += sum(kind == "filtered" for _, kind, _ in result.issues)
        self.failed += sum(kind == "failed" for _, kind, _ in result.issues)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return run(args)
    except ConfigError as err:
        print(f"multiflow-preprocess: error: {err}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    if not args.inputs and not args.file_list:
        raise ConfigError("no inputs: give folders/files and/or --file-list")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another preprocess run is writing to {out}") from None
        if args.overwrite:
            clear_outputs(out)
        spec = _check_options(out, options, args)
        return _run_locked(args, out, options, Splitter(spec))


def _check_options(out: Path, options: ProcessOptions, args: argparse.Namespace) -> SplitSpec:
    path = out / "options.json"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    if stored.get("processing") and stored["processing"] != options.as_dict():
        raise ConfigError(
            f"{out} was processed with options {stored['processing']}, this run asks for {options.as_dict()}; "
            "pass --overwrite to start over or choose another --out")
    spec = split_spec(args, stored.get("splits"))
    from data_pipelines.state import atomic_write_text

    atomic_write_text(path, json.dumps({"processing": options.as_dict(), "splits": spec.as_dict()}, indent=2) + "\n")
    return spec


def _run_locked(args: argparse.Namespace, out: Path, options: ProcessOptions, splitter: Splitter) -> int:
    start = time.perf_counter()
    remove_temp_files(out)
    records, bad_lines = load_records(out)
    if bad_lines:
        logger.warning("ignored %d unreadable journal line(s) (a run killed mid-write); those sources are redone",
                       bad_lines)
    found = discover(args.inputs, args.file_list)
    stats = RunStats(found=len(found.files))
    journal = Journal(out)
    try:
        for path, reason in found.problems:
            if records.get(path) and records[path].rows:
                stats.missing_sources.append(path)  # processed before: keep its chains
                continue
            problem = SourceResult(source=path, stem="", issues=[("", "failed", reason)])
            records[path] = problem
            journal.append(problem)
            stats.failed += 1
        stems = assign_stems(found.files, {p: r.stem for p, r in records.items() if r.stem})
        todo = [(p, stems[p]) for p in found.files if _needs_work(p, records, args.retry_failed, out, journal)]
        stats.up_to_date = len(found.files) - len(todo)
        interrupted = _process_all(todo, records, journal, stats, args, out, options, splitter)
    finally:
        journal.close()
    counts = write_snapshot(out, records, splitter)
    stats.seconds = time.perf_counter() - start
    _print_summary(stats, counts, records, out, interrupted)
    return 130 if interrupted else 0


def _needs_work(path: str, records: dict[str, SourceResult], retry_failed: bool, out: Path, journal: Journal) -> bool:
    """False when ``path`` was done before with the same content, all its npz files are present,
    and it did not fail (or failures are not retried)."""
    record = records.get(path)
    if record is None or not record.content_hash:
        return True
    try:
        info = os.stat(path)
    except OSError:
        return True
    if (info.st_size, info.st_mtime_ns) != (record.size, record.mtime_ns):
        if sha256_of(path) != record.content_hash:
            return True
        record.size, record.mtime_ns = info.st_size, info.st_mtime_ns  # touched, not changed
        journal.append(record)
    if record.failed and retry_failed:
        return True
    return not all((out / row["example_path"]).is_file() for row in record.rows)


def _results(todo: list[tuple[str, str]], args: argparse.Namespace, out: Path, options: ProcessOptions):
    """Yield SourceResults, from a fork pool when ``--workers`` > 1."""
    from data_pipelines import worker  # heavy imports (torch, biotite) once, before forking

    job = partial(worker.process_source, options=options, out_dir=str(out))
    workers = min(args.workers, len(todo))
    if workers <= 1:
        worker.quiet_logging(args.verbose)
        yield from map(job, todo)
        return
    methods = mp.get_all_start_methods()
    context = mp.get_context("fork" if "fork" in methods else methods[0])
    chunksize = max(1, min(32, len(todo) // (workers * 8)))
    with context.Pool(workers, initializer=worker.init_worker, initargs=(args.verbose,)) as pool:
        yield from pool.imap_unordered(job, todo, chunksize=chunksize)


def _process_all(todo, records, journal, stats, args, out, options, splitter) -> bool:
    """Run the sources in ``todo``, journal each result; True when interrupted by Ctrl-C."""
    if not todo:
        return False
    from tqdm import tqdm

    results = _results(todo, args, out, options)
    last_snapshot = time.monotonic()
    bar = None
    try:
        for result in results:
            if bar is None:  # created after the pool forked (tqdm starts a monitor thread)
                bar = tqdm(total=len(todo), unit="file", disable=True if args.no_progress else None,
                           dynamic_ncols=True, desc="preprocess")
            _forget_orphans(records.get(result.source), result, out)
            records[result.source] = result
            journal.append(result)
            stats.add(result)
            bar.update(1)
            bar.set_postfix(chains=stats.chains, failed=stats.failed, refresh=False)
            if time.monotonic() - last_snapshot > SNAPSHOT_SECONDS:
                write_snapshot(out, records, splitter)
                last_snapshot = time.monotonic()
    except KeyboardInterrupt:
        results.close()
        return True
    finally:
        if bar is not None:
            bar.close()
    return False


def _forget_orphans(old: SourceResult | None, new: SourceResult, out: Path) -> None:
    """Delete npz files of a source's earlier record that its new result no longer produces."""
    if old is None:
        return
    keep = {row["example_path"] for row in new.rows}
    for row in old.rows:
        if row["example_path"] not in keep:
            (out / row["example_path"]).unlink(missing_ok=True)


def _print_summary(stats: RunStats, counts, records: dict[str, SourceResult], out: Path, interrupted: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    rate = stats.chains / stats.seconds if stats.seconds > 0 else 0.0
    table = Table(title="multiflow-preprocess" + (" (interrupted)" if interrupted else ""), show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    rows = [
        ("structure files found", stats.found), ("already done (skipped)", stats.up_to_date),
        ("files processed now", stats.sources_done), ("chains written", stats.chains),
        ("chains skipped by filter", stats.filtered), ("failed (files or chains)", stats.failed),
        ("wall time (s)", f"{stats.seconds:.1f}"), ("chains/s", f"{rate:.1f}"),
        ("chains in output", sum(counts.values())),
    ]
    rows += [(f"  split {name or '(none)'}", n) for name, n in sorted(counts.items())]
    for label, value in rows:
        table.add_row(label, str(value))
    console = Console(highlight=False)
    console.print(table)
    if stats.missing_sources:
        console.print(f"{len(stats.missing_sources)} source(s) processed earlier are not found now; "
                      "their chains are kept (use --overwrite to rebuild)")
    if counts.get(""):
        console.print(f"{counts['']} chain(s) have no split (not in the manifest)")
    console.print(f"output: {out} (failures: {out / 'failures.tsv'})")


if __name__ == "__main__":
    raise SystemExit(main())
