"""Fixtures for the design tasks: a tiny random-initialised checkpoint and a small two-chain structure.

The structure is built from ideal internal coordinates (NeRF; helical phi/psi) so its geometry is
real: chain A has insertion codes (A10, A10A, A10B), a numbering jump while bonded (A12 -> A70, so
both A7 and A72 exist), and one residue (A77) without N/CA/C; chain B is a separate helix.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from multiflow.constants import ATOM_ORDER, NUM_ATOMS
from multiflow.data.chain import ProteinChain
from multiflow.data.io import write_pdb

TINY_OVERRIDES = ["model=tiny"]


def _checkpoint(path: Path, **model_changes) -> Path:
    from omegaconf import OmegaConf

    from multiflow.models.config import DenoiserConfig
    from multiflow.models.denoiser import Denoiser
    from multiflow.training.train import compose_config

    cfg = OmegaConf.to_container(compose_config("train", TINY_OVERRIDES), resolve=False)
    cfg.pop("run_dir", None)  # needs Hydra's ${now:} resolver; not part of the model
    cfg = OmegaConf.to_container(OmegaConf.create(cfg), resolve=True)
    cfg["model"].update(model_changes)
    torch.manual_seed(0)
    denoiser = Denoiser(DenoiserConfig.from_dict(cfg["model"]))
    torch.save({"format": "multiflow-model/1", "config": cfg, "state_dict": denoiser.state_dict(), "meta": {}}, path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="session")
def tiny_confidence_checkpoint(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ckpt_conf") / "tiny_conf.pt", confidence_head=True)


@pytest.fixture(scope="session")
def loaded(tiny_checkpoint):
    from multiflow.training.checkpoint import load_checkpoint

    return load_checkpoint(tiny_checkpoint, "cpu")


@pytest.fixture(scope="session")
def design_model(tiny_checkpoint):
    from multiflow.api import SamplingSettings, load_model

    return load_model(tiny_checkpoint, "cpu", settings=SamplingSettings(num_steps=5))


# --- structures ---------------------------------------------------------------------------------
def _place(a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle: float, torsion: float) -> np.ndarray:
    """NeRF: the atom d with |cd| = bond, angle(b, c, d) = angle, dihedral(a, b, c, d) = torsion (radians)."""
    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.stack([bc, np.cross(n, bc), n], axis=1)
    d = np.array([-bond * math.cos(angle), bond * math.sin(angle) * math.cos(torsion),
                  bond * math.sin(angle) * math.sin(torsion)])
    return c + m @ d


def helix_backbone(n: int, phi: float = -57.0, psi: float = -47.0) -> np.ndarray:
    """[n, 4, 3] N, CA, C, O of an ideal helix, Å."""
    rad = math.radians
    atoms = [np.array([0.0, 1.458, 0.0]), np.zeros(3), np.array([1.525, 0.0, 0.0])]  # N, CA, C of residue 0
    for i in range(1, n):
        n_i = _place(atoms[-3], atoms[-2], atoms[-1], 1.329, rad(116.2), rad(psi))
        ca_i = _place(atoms[-2], atoms[-1], n_i, 1.458, rad(121.7), rad(180.0))
        c_i = _place(atoms[-1], n_i, ca_i, 1.525, rad(111.1), rad(phi))
        atoms += [n_i, ca_i, c_i]
    ncac = np.array(atoms).reshape(n, 3, 3)
    out = np.zeros((n, 4, 3))
    out[:, :3] = ncac
    for i in range(n):  # O in the peptide plane, opposite the next N
        nxt = ncac[i + 1, 0] if i + 1 < n else _place(ncac[i, 0], ncac[i, 1], ncac[i, 2], 1.329, rad(116.2), rad(psi))
        out[i, 3] = _place(nxt, ncac[i, 1], ncac[i, 2], 1.231, rad(120.5), rad(180.0))
    return out.astype(np.float32)


def make_chain(backbone: np.ndarray, sequence: str, numbers: list[int], icodes: list[str], chain_id: str,
               drop_backbone: tuple[int, ...] = ()) -> ProteinChain:
    n = len(sequence)
    pos = np.zeros((n, NUM_ATOMS, 3), np.float32)
    mask = np.zeros((n, NUM_ATOMS), bool)
    for k, atom in enumerate(("N", "CA", "C", "O")):
        pos[:, ATOM_ORDER[atom]] = backbone[:, k]
        mask[:, ATOM_ORDER[atom]] = True
    for i in drop_backbone:  # keep only O: the residue is read back with backbone_mask False
        mask[i, [ATOM_ORDER["N"], ATOM_ORDER["CA"], ATOM_ORDER["C"]]] = False
    from multiflow.data.tokens import sequence_to_tokens

    return ProteinChain(aatype=sequence_to_tokens(sequence), atom_positions=pos, atom_mask=mask,
                        residue_index=np.array(numbers), insertion_code=np.array(icodes),
                        b_factors=np.zeros((n, NUM_ATOMS), np.float32), chain_id=chain_id, name="toy")


CHAIN_A_NUMBERS = list(range(1, 11)) + [10, 10] + [11, 12] + list(range(70, 80))
CHAIN_A_ICODES = [""] * 10 + ["A", "B"] + [""] * 12
CHAIN_A_SEQ = "MKTAYIAKQRQLEEGHSALKWLEV"  # 24 residues
CHAIN_B_SEQ = "GSPEELLKKAEE"  # 12 residues
MISSING_A = 21  # position of A77 (lacks N, CA, C)


@pytest.fixture(scope="session")
def toy_pdb(tmp_path_factory) -> Path:
    """Two chains written as PDB; see the module docstring."""
    a = make_chain(helix_backbone(24), CHAIN_A_SEQ, CHAIN_A_NUMBERS, CHAIN_A_ICODES, "A", drop_backbone=(MISSING_A,))
    bb_b = helix_backbone(12) + np.array([12.0, 0.0, 0.0], np.float32)
    b = make_chain(bb_b, CHAIN_B_SEQ, list(range(1, 13)), [""] * 12, "B")
    path = tmp_path_factory.mktemp("toy") / "toy.pdb"
    write_pdb([a, b], path)
    return path
