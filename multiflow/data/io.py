"""Reading and writing structures (PDB, mmCIF, gzipped or not): the one import for users.

Reading is biotite's parsing plus the decisions of :mod:`multiflow.data.atom_array` about what a
*protein chain* is (waters, ligands, modified and hetero residues, missing atoms). This module
reads the file:
  * gzip is recognised by its magic bytes, whatever the suffix;
  * the format (PDB or mmCIF) is sniffed from the content; a disagreeing suffix is logged;
  * one model (``model=1`` by default; NMR ensembles hold many);
  * alternate locations resolved by biotite, keeping the highest-occupancy location.
Writing lives in :mod:`multiflow.data.writers` (writes go to a temporary file in the target
directory, then ``os.replace``: ``atomic_write``) and FASTA in :mod:`multiflow.data.fasta`; their
functions and ``atom_array_to_chains`` are re-exported here.
"""

from __future__ import annotations

import gzip
import io
import logging
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import biotite.structure.io.pdbx as pdbx

from multiflow.data.atom_array import atom_array_to_chains
from multiflow.data.chain import ProteinChain
from multiflow.data.fasta import read_fasta, write_fasta  # noqa: F401  (re-exported)
from multiflow.data.writers import (  # noqa: F401  (re-exported: io is the one import for users)
    atomic_write, chain_to_atom_array, pdb_string, write_mmcif, write_pdb, write_trajectory_pdb,
)
from multiflow.errors import BadStructureError

logger = logging.getLogger(__name__)

PDB_SUFFIXES = (".pdb", ".ent", ".pdb1")
CIF_SUFFIXES = (".cif", ".mmcif", ".pdbx")
GZIP_MAGIC = b"\x1f\x8b"
_PDB_RECORDS = {"ATOM", "HETATM", "HEADER", "MODEL", "CRYST1", "REMARK", "TITLE", "COMPND", "SOURCE",
                "SEQRES", "EXPDTA", "AUTHOR", "KEYWDS", "JRNL", "ANISOU", "TER", "END", "HELIX", "SHEET"}


def gunzip(data: bytes, path: Path, error: type[Exception]) -> bytes:
    """``data`` decompressed when it starts with the gzip magic bytes, else unchanged; corrupt gzip raises ``error``."""
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as err:
        raise error(f"{path}: gzip data is truncated or corrupt ({err})") from err


# --- reading ---------------------------------------------------------------------------------
def read_structure(path: str | Path, chains: str | Sequence[str] | None = None, model: int = 1) -> list[ProteinChain]:
    """Read the protein chains of a PDB or mmCIF file (``.gz`` allowed) as :class:`ProteinChain`.

    ``chains``: chain ids to return, in that order (a list, one id, or ``"A,B"``); default all
    protein chains in file order. ``model``: 1-based model number (NMR ensembles).
    Raises FileNotFoundError for a missing path, :class:`UnknownChainError` for a chain id not
    in the file, and :class:`BadStructureError` for anything else unusable.
    """
    path = Path(path)
    text, fmt = _read_text(path)
    atoms = _parse(text, fmt, model, path)
    return atom_array_to_chains(atoms, name=_stem(path), chains=chains, source=str(path))


def _stem(path: Path) -> str:
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    return name.rsplit(".", 1)[0] if "." in name else name


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise FileNotFoundError(2, "structure file not found", str(path))
    if path.is_dir():
        raise BadStructureError(f"{path} is a directory; expected a PDB or mmCIF file")
    data = path.read_bytes()
    if data[:2] != GZIP_MAGIC and path.suffix.lower() == ".gz":
        logger.info("%s has a .gz suffix but is not gzip-compressed; reading it as plain text", path)
    return gunzip(data, path, BadStructureError)


def _read_text(path: Path) -> tuple[str, str]:
    """The decompressed text of a structure file and its format, ``"pdb"`` or ``"cif"``."""
    data = _read_bytes(path)
    if not data.strip():
        raise BadStructureError(f"{path} is empty; expected a PDB or mmCIF file")
    if b"\x00" in data[:65536]:
        raise BadStructureError(f"{path} is binary data, not a PDB or mmCIF text file")
    text = data.decode("utf-8", errors="replace")
    fmt = _sniff(text)
    lower = path.name.lower().removesuffix(".gz")
    by_suffix = "cif" if lower.endswith(CIF_SUFFIXES) else "pdb" if lower.endswith(PDB_SUFFIXES) else None
    if fmt is None:
        raise BadStructureError(
            f"{path} is not a readable structure: found neither PDB records (ATOM/HETATM) nor an mmCIF "
            f"data block (data_ ... _atom_site)"
        )
    if by_suffix and by_suffix != fmt:
        logger.warning("%s: the suffix says %s but the content is %s; reading it as %s", path, by_suffix, fmt, fmt)
    return text, fmt


def _sniff(text: str) -> str | None:
    """Guess the format from the content: mmCIF data blocks or PDB record names."""
    for line in text.splitlines()[:5000]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith(("data_", "loop_", "_atom_site.", "_entry.")):
            return "cif"
        if line[:6].strip() in _PDB_RECORDS:
            return "pdb"
    return None


def _parse(text: str, fmt: str, model: int, path: Path) -> struc.AtomArray:
    """Parse one model into an AtomArray with ``b_factor`` and ``occupancy``."""
    if isinstance(model, bool) or not isinstance(model, (int, np.integer)) or model < 1:
        raise BadStructureError(f"model must be a positive 1-based integer, got {model!r}")
    extra = ["b_factor", "occupancy"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "elements were guessed from atom name"
            if fmt == "pdb":
                handle = pdb.PDBFile.read(io.StringIO(text))
                count = handle.get_model_count()
                _check_model(count, model, path)
                atoms = handle.get_structure(model=model, altloc="occupancy", extra_fields=extra)
            else:
                handle = pdbx.CIFFile.read(io.StringIO(text))
                if "atom_site" not in handle.block:
                    raise BadStructureError(f"{path}: the mmCIF file has no _atom_site category (no coordinates)")
                count = pdbx.get_model_count(handle)
                _check_model(count, model, path)
                atoms = pdbx.get_structure(handle, model=model, altloc="occupancy", extra_fields=extra)
    except BadStructureError:
        raise
    except Exception as err:  # biotite raises several types on malformed text
        raise BadStructureError(f"{path}: cannot parse as {fmt.upper()} ({type(err).__name__}: {err})") from err
    return atoms


def _check_model(count: int, model: int, path: Path) -> None:
    if count == 0:
        raise BadStructureError(f"{path} has no atom records (ATOM/HETATM); expected a protein structure")
    if model > count:
        raise BadStructureError(f"{path} has {count} model(s); model {model} was requested")


_atomic_write = atomic_write  # the old private name (multiflow.evaluation.viz, report, sampling.outputs)
