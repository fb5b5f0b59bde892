"""Writing ProteinChain records: PDB, mmCIF (biotite), multi-model trajectories; atomic file writes."""

from __future__ import annotations

import gzip
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import biotite.structure.io.pdbx as pdbx

from multiflow.constants import ATOM_ORDER, ATOM_TYPES, RESTYPE_1TO3, RESTYPES, UNK_RESNAME
from multiflow.data.chain import ProteinChain
from multiflow.errors import BadStructureError

_PDB_ORDER = ("N", "CA", "C", "O") + tuple(a for a in ATOM_TYPES if a not in ("N", "CA", "C", "O"))


def chain_to_atom_array(chain: ProteinChain) -> struc.AtomArray:
    """The present atoms of a chain as a biotite AtomArray (PDB atom order N, CA, C, O, side chain)."""
    order = [ATOM_ORDER[a] for a in _PDB_ORDER]
    res, slot = np.nonzero(chain.atom_mask[:, order])
    slot = np.asarray(order)[slot]
    arr = struc.AtomArray(len(res))
    arr.coord = chain.atom_positions[res, slot]
    arr.chain_id = np.full(len(res), chain.chain_id)
    arr.res_id = chain.residue_index[res]
    arr.ins_code = chain.insertion_code[res]
    three = np.array([RESTYPE_1TO3.get(a, UNK_RESNAME) for a in RESTYPES + "X"])
    arr.res_name = three[chain.aatype[res]]
    arr.hetero = np.zeros(len(res), bool)
    arr.atom_name = np.array(ATOM_TYPES)[slot]
    arr.element = np.array([a[0] for a in ATOM_TYPES])[slot]
    arr.add_annotation("b_factor", np.float32)
    arr.b_factor = chain.b_factors[res, slot]
    arr.add_annotation("occupancy", np.float32)
    arr.occupancy = np.ones(len(res), np.float32)
    return arr


def _chains_to_atoms(chains: ProteinChain | Iterable[ProteinChain]) -> struc.AtomArray:
    chains = [chains] if isinstance(chains, ProteinChain) else list(chains)
    if not chains:
        raise BadStructureError("no chains to write; expected at least one ProteinChain")
    ids = [c.chain_id for c in chains]
    dupes = sorted({c for c in ids if ids.count(c) > 1})
    if dupes:
        raise BadStructureError(f"chain ids must be unique in one file, got duplicates {dupes}; use chain.with_chain_id()")
    return struc.concatenate([chain_to_atom_array(c) for c in chains])


# --- writing -------------------------------------------------------------------------------------
def _check_pdb_limits(atoms: struc.AtomArray | struc.AtomArrayStack) -> None:
    long_ids = sorted({c for c in atoms.chain_id.tolist() if len(c) > 1})
    if long_ids:
        raise BadStructureError(f"PDB format allows 1-character chain ids, got {long_ids}; write mmCIF instead")
    if atoms.res_id.size and (atoms.res_id.min() < -999 or atoms.res_id.max() > 9999):
        raise BadStructureError("PDB format allows residue numbers -999..9999; write mmCIF instead")
    coord = atoms.coord
    if coord.size and (coord.min() <= -1000 or coord.max() >= 10000):
        raise BadStructureError("coordinates exceed the PDB column width (-999.999..9999.999 Å); write mmCIF instead")


def pdb_string(chains: ProteinChain | Iterable[ProteinChain]) -> str:
    """PDB text of one or more chains (one model)."""
    return _pdb_text(_chains_to_atoms(chains))


def _pdb_text(atoms: struc.AtomArray | struc.AtomArrayStack) -> str:
    _check_pdb_limits(atoms)
    handle = pdb.PDBFile()
    handle.set_structure(atoms)
    buffer = io.StringIO()
    handle.write(buffer)
    return _add_terminators(buffer.getvalue())


def _add_terminators(text: str) -> str:
    """Add a TER line after each chain of each model and a final END (biotite writes neither)."""
    out: list[str] = []
    previous = None  # (chain id) of the last ATOM/HETATM line in the current model
    for line in text.splitlines():
        is_atom = line.startswith(("ATOM", "HETATM"))
        if previous is not None and (not is_atom or line[21] != previous):
            out.append("TER")
            previous = None
        out.append(line)
        if is_atom:
            previous = line[21]
    if previous is not None:
        out.append("TER")
    out.append("END")
    return "\n".join(out) + "\n"


def write_pdb(chains: ProteinChain | Iterable[ProteinChain], path: str | Path) -> Path:
    """Write chains as one PDB model; ``.gz`` paths are gzipped. Returns the path."""
    return atomic_write(path, pdb_string(chains))


def write_mmcif(chains: ProteinChain | Iterable[ProteinChain], path: str | Path) -> Path:
    """Write chains as an mmCIF file; ``.gz`` paths are gzipped. Returns the path."""
    chains = [chains] if isinstance(chains, ProteinChain) else list(chains)
    atoms = _chains_to_atoms(chains)
    handle = pdbx.CIFFile()
    block = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in chains[0].name) or "multiflow"
    pdbx.set_structure(handle, atoms, data_block=block)
    buffer = io.StringIO()
    handle.write(buffer)
    return atomic_write(path, buffer.getvalue())


def write_trajectory_pdb(frames: Sequence, path: str | Path) -> Path:
    """Write a multi-model PDB, one MODEL per frame.

    A frame is a ProteinChain, a list of ProteinChain, or a biotite AtomArray; every frame must
    hold the same atoms (only coordinates may change).
    """
    if len(frames) == 0:
        raise BadStructureError("no frames to write; expected at least one")
    arrays = [f if isinstance(f, struc.AtomArray) else _chains_to_atoms(f) for f in frames]
    for k, arr in enumerate(arrays[1:], start=2):
        same = arr.array_length() == arrays[0].array_length() and all(
            np.array_equal(arr.get_annotation(a), arrays[0].get_annotation(a))
            for a in ("chain_id", "res_id", "res_name", "atom_name"))
        if not same:
            raise BadStructureError(f"trajectory frame {k} holds different atoms than frame 1; expected identical topology")
    return atomic_write(path, _pdb_text(struc.stack(arrays)))


@lru_cache(maxsize=1)
def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def atomic_write(path: str | Path, text: str) -> Path:
    """Write text to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(2, "output directory does not exist", str(path.parent))
    data = text.encode("utf-8")
    if path.name.lower().endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
