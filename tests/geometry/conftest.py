"""Geometry test fixtures: a few real chains from the shared training set, as torch tensors."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

NUM_CHAINS = 4


@dataclass
class RealChain:
    name: str
    bb: torch.Tensor  # [N, 4, 3] float64 Å, N CA C O, residues with all four atoms
    cb: torch.Tensor  # [N, 3] float64 Å (zeros where missing)
    has_cb: torch.Tensor  # [N] bool
    next_is_bonded: torch.Tensor  # [N] bool, C_i - N_{i+1} < 2 Å


def load_chains(shared_data: Path) -> list[RealChain]:
    import biotite.structure as struc
    from biotite.structure.io.pdb import PDBFile

    files = sorted((shared_data / "structures" / "train").glob("*.pdb.gz"))[:NUM_CHAINS]
    chains = []
    for path in files:
        with gzip.open(path, "rt") as fh:
            arr = PDBFile.read(fh).get_structure(model=1)
        arr = arr[struc.filter_amino_acids(arr) & ~arr.hetero]
        bb, cb, has_cb = [], [], []
        for res in struc.residue_iter(arr):
            names = list(res.atom_name)
            if not all(a in names for a in ("N", "CA", "C", "O")):
                continue
            bb.append([res.coord[names.index(a)] for a in ("N", "CA", "C", "O")])
            has_cb.append("CB" in names)
            cb.append(res.coord[names.index("CB")] if "CB" in names else np.zeros(3))
        bbt = torch.tensor(np.array(bb), dtype=torch.float64)
        gap = (bbt[1:, 0] - bbt[:-1, 2]).norm(dim=-1) < 2.0
        chains.append(RealChain(path.name, bbt, torch.tensor(np.array(cb), dtype=torch.float64),
                                torch.tensor(has_cb), torch.cat([gap, torch.tensor([False])])))
    return chains


@pytest.fixture(scope="session")
def real_chains(shared_data):
    chains = load_chains(shared_data)
    if not chains:
        pytest.skip("no structures in shared data")
    return chains
