"""Processing one source file: read -> per-chain features -> filters -> npz + metadata row.

Runs in pool workers (or inline with one worker). Nothing here raises on bad input: every
problem becomes an *issue* ``(chain_id, kind, reason)`` with kind ``filtered`` or ``failed``
and a reason that starts with a short tag (``filtered:``, ``unreadable:``, ``unknown-chain:``...).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import stat
import tempfile
import time
import traceback
from functools import lru_cache
from pathlib import Path

import numpy as np

from data_pipelines.records import ProcessOptions, SourceResult
from data_pipelines.sources import file_stem, pdb_code, safe_name, shard_of
from multiflow.data.chain import ProteinChain
from multiflow.data.features import chain_to_features, summarize
from multiflow.data.io import read_structure
from multiflow.errors import BadStructureError, UnknownChainError

COORD_LIMIT: float = 9999.999
"""Largest |coordinate| (Å) accepted: the PDB format's column range; real chains are far inside it."""


def quiet_logging(verbose: bool = False) -> None:
    """Silence io's per-residue warnings (missing atoms...), which would drown the progress bar."""
    if not verbose:
        logging.getLogger("multiflow").setLevel(logging.ERROR)


_TAGS: tuple[tuple[str, str], ...] = (  # (phrase in io's message, tag), first match wins
    ("gzip", "corrupt-gzip"), ("binary data", "binary"), ("is empty", "empty"),
    ("not a readable structure", "not-a-structure"), ("NaN/inf", "nan-coordinates"),
    ("no amino-acid residues", "no-protein"), ("0 residues with heavy atoms", "no-protein"),
    ("model(s); model", "no-such-model"), ("cannot parse", "parse-error"), ("has no atom records", "no-atoms"),
    ("no _atom_site", "no-atoms"),
)


def describe(err: BaseException, source: str) -> str:
    """``<tag>: <message>`` for a read error, the message without the (already logged) path."""
    message = str(err).replace(f"{source}: ", "").replace(f"{source} ", "the file ").replace(source, "the file")
    tag = next((t for phrase, t in _TAGS if phrase in message), "unreadable")
    return f"{tag}: {message}"


def init_worker(verbose: bool = False) -> None:
    """Pool initializer: one torch thread per worker, Ctrl-C left to the parent, quiet io."""
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_logging(verbose)


def process_source(job: tuple[str, str], options: ProcessOptions, out_dir: str) -> SourceResult:
    """Process one file ``job = (source path, stem)``; never raises."""
    start = time.perf_counter()
    result = SourceResult(source=job[0], stem=job[1])
    try:
        chains = _read(result, options)
        used: set[str] = set()
        for chain in chains:
            try:
                _process_chain(chain, result, options, Path(out_dir), used)
            except Exception as err:  # one bad chain must not lose the others
                result.fail(f"internal-error: {type(err).__name__}: {err} ({_where(err)})", chain.chain_id)
    except Exception as err:
        result.fail(f"internal-error: {type(err).__name__}: {err} ({_where(err)})")
    result.seconds = time.perf_counter() - start
    return result


def _where(err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    return f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"


def _read(result: SourceResult, options: ProcessOptions) -> list[ProteinChain]:
    path = result.source
    try:
        info = os.stat(path)
    except FileNotFoundError:
        result.fail("not-found: no such file (or a broken symlink)")
        return []
    except OSError as err:
        result.fail(f"unreadable: cannot stat ({err.strerror})")
        return []
    if stat.S_ISDIR(info.st_mode):
        result.fail("not-a-file: is a directory")
        return []
    if not stat.S_ISREG(info.st_mode):
        result.fail("not-a-file: not a regular file")
        return []
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        result.fail(f"unreadable: {err.strerror}")
        return []
    result.content_hash = hashlib.sha256(data).hexdigest()
    result.size, result.mtime_ns = info.st_size, info.st_mtime_ns
    if not data:
        result.fail("empty: the file has 0 bytes")
        return []
    try:
        return read_structure(path, chains=list(options.chains) if options.chains else None, model=options.model)
    except FileNotFoundError:
        result.fail("not-found: the file disappeared while processing")
    except BadStructureError as err:
        if options.chains is None:
            result.fail(describe(err, path))
        else:
            return _read_requested(result, options, err)
    return []


def _read_requested(result: SourceResult, options: ProcessOptions, first: BadStructureError) -> list[ProteinChain]:
    """Some requested chains are missing: keep the present ones, log each missing one."""
    try:
        present = {c.chain_id: c for c in read_structure(result.source, model=options.model)}
    except BadStructureError as err:
        result.fail(describe(err, result.source))
        return []
    kept = []
    for chain_id in options.chains or ():
        if chain_id in present:
            kept.append(present[chain_id])
            continue
        try:  # ask io alone for this chain: its message tells "not there" from "only waters/ligands"
            read_structure(result.source, chains=[chain_id], model=options.model)
            tag, reason = "unknown-chain", f"chain {chain_id!r} could not be read"
        except UnknownChainError as err:
            tag, reason = "unknown-chain", describe(err, result.source).split(": ", 1)[1]
        except BadStructureError as err:
            tag, reason = "no-protein", describe(err, result.source).split(": ", 1)[1]
        result.fail(f"{tag}: {reason}", chain_id)
    return kept


def _process_chain(chain: ProteinChain, result: SourceResult, options: ProcessOptions, out: Path, used: set[str]) -> None:
    chain_id = chain.chain_id
    present = chain.atom_positions[chain.atom_mask]  # [M, 3]
    if present.size and np.abs(present).max() > COORD_LIMIT:
        worst = float(np.abs(present).max())
        result.fail(f"implausible-coordinates: |x| reaches {worst:.4g} Å (limit {COORD_LIMIT} Å)", chain_id)
        return
    usable = int(chain.backbone_mask.sum())
    if usable == 0:
        result.skip(f"filtered: no-backbone: none of the {chain.length} residues has N, CA and C "
                    "(CA-only or trace model)", chain_id)
        return
    features = chain_to_features(chain)
    summary = summarize(chain, features)
    reason = _filter_reason(summary, options)
    if reason:
        result.skip(f"filtered: {reason}", chain_id)
        return
    example_id = f"{result.stem}_{safe_name(chain_id)}"
    if example_id.lower() in used:  # chain ids differing only in case or unsafe characters
        example_id = f"{example_id}-{len(used) + 1}"
    used.add(example_id.lower())
    rel = f"examples/{shard_of(example_id)}/{example_id}.npz"
    save_npz(out / rel, features)
    result.rows.append({
        "example_id": example_id, "pdb_id": pdb_code(file_stem(result.source)), "chain_id": chain_id,
        "length": summary["length"], "helix_frac": f"{summary['helix_frac']:.4f}",
        "strand_frac": f"{summary['strand_frac']:.4f}", "coil_frac": f"{summary['coil_frac']:.4f}",
        "missing_frac": f"{summary['missing_frac']:.4f}",
        "radius_of_gyration": f"{summary['radius_of_gyration']:.3f}", "source_path": result.source,
        "content_hash": result.content_hash, "example_path": rel, "split": "",
    })


def _filter_reason(summary: dict, options: ProcessOptions) -> str:
    length = summary["length"]
    if length < options.min_length:
        return f"length {length} < --min-length {options.min_length}"
    if options.max_length is not None and length > options.max_length:
        return f"length {length} > --max-length {options.max_length}"
    if summary["coil_frac"] > options.max_coil_fraction:
        return f"coil fraction {summary['coil_frac']:.3f} > --max-coil-fraction {options.max_coil_fraction}"
    if summary["missing_frac"] > options.max_missing_fraction:
        return f"missing fraction {summary['missing_frac']:.3f} > --max-missing-fraction {options.max_missing_fraction}"
    return ""


@lru_cache(maxsize=1)
def _file_mode() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return 0o666 & ~current


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` to a temporary file next to ``path``, then ``os.replace`` (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
