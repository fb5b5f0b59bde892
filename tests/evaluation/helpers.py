"""Hand-made geometry for evaluation tests."""

from __future__ import annotations

import numpy as np

from multiflow.constants import CA_IDX, NUM_ATOMS
from multiflow.data.chain import ProteinChain


def ca_chain(ca: np.ndarray, sequence: str | None = None, name: str = "ca") -> ProteinChain:
    """A CA-only chain from CA coordinates [N, 3] (Å)."""
    ca = np.asarray(ca, np.float32)
    n = ca.shape[0]
    pos = np.zeros((n, NUM_ATOMS, 3), np.float32)
    pos[:, CA_IDX] = ca
    mask = np.zeros((n, NUM_ATOMS), bool)
    mask[:, CA_IDX] = True
    tokens = np.zeros(n, np.int64) if sequence is None else np.array(["ARNDCQEGHILKMFPSTWYV".index(c) for c in sequence])
    return ProteinChain(aatype=tokens, atom_positions=pos, atom_mask=mask, residue_index=np.arange(1, n + 1),
                        insertion_code=np.full(n, ""), b_factors=np.zeros((n, NUM_ATOMS)), name=name)


def moved_copy(chain: ProteinChain, rot: np.ndarray, shift, noise: float = 0.0, seed: int = 0, name: str | None = None) -> ProteinChain:
    """``chain`` rotated by ``rot``, shifted, plus optional Gaussian noise (Å) on every atom."""
    pos = chain.atom_positions.astype(np.float64) @ np.asarray(rot).T + np.asarray(shift)
    pos = pos + noise * np.random.default_rng(seed).normal(size=pos.shape)
    return ProteinChain(chain.aatype, pos.astype(np.float32), chain.atom_mask, chain.residue_index, chain.insertion_code,
                        chain.b_factors, chain_id=chain.chain_id, name=name or chain.name)


def random_rotation(seed: int) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
