"""`ProteinChain`: one protein chain as immutable numpy arrays in the atom37 representation.

Every array is copied on construction and made read-only, so a chain can be shared freely.
Atoms that are absent (``atom_mask`` False) have their coordinates and B-factors set to 0.
Reading and writing files lives in :mod:`multiflow.data.io`; the methods here delegate to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from multiflow.constants import ATOM_TYPES, C_IDX, CA_IDX, N_IDX, NUM_AA, NUM_ATOMS, O_IDX, UNK_TOKEN
from multiflow.data.tokens import sequence_to_tokens, tokens_to_sequence
from multiflow.errors import BadStructureError

if TYPE_CHECKING:
    import torch

PEPTIDE_BOND_MAX: float = 2.0
"""Largest C(i)-N(i+1) distance, Å, still counted as a peptide bond (ideal 1.33 Å)."""
CA_CA_MAX: float = 4.2
"""Largest CA(i)-CA(i+1) distance, Å, for consecutive bonded residues (trans 3.8 Å)."""
BACKBONE4: tuple[int, int, int, int] = (N_IDX, CA_IDX, C_IDX, O_IDX)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        return x.detach().cpu().numpy()
    return np.asarray(x)


@dataclass(frozen=True, eq=False, repr=False)
class ProteinChain:
    """One protein chain. ``N`` residues, 37 atom slots in ``constants.ATOM_TYPES`` order."""

    aatype: np.ndarray  # [N] int64, 0..19 = constants.RESTYPES, 20 = X (unknown)
    atom_positions: np.ndarray  # [N, 37, 3] float32, Å
    atom_mask: np.ndarray  # [N, 37] bool, True where the atom is present
    residue_index: np.ndarray  # [N] int64, author residue numbers
    insertion_code: np.ndarray  # [N] str, '' when none
    b_factors: np.ndarray  # [N, 37] float32, Å²
    chain_id: str = "A"
    name: str = ""
    _cache: dict = field(default_factory=dict, init=False, compare=False)

    def __post_init__(self) -> None:
        def put(attr: str, value: Any) -> None:
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, attr, value)

        where = f"ProteinChain {self.name!r} chain {self.chain_id!r}"
        aatype = _to_numpy(self.aatype)
        if aatype.ndim != 1 or aatype.shape[0] < 1:
            raise BadStructureError(f"{where}: expected aatype of shape [N] with N >= 1, got {aatype.shape}")
        n = aatype.shape[0]
        if not np.issubdtype(aatype.dtype, np.integer):
            raise BadStructureError(f"{where}: aatype must hold integers, got dtype {aatype.dtype}")
        if aatype.min() < 0 or aatype.max() > NUM_AA:
            raise BadStructureError(f"{where}: aatype must lie in 0..{NUM_AA}, got {aatype.min()}..{aatype.max()}")
        expected = {
            "atom_positions": (n, NUM_ATOMS, 3), "atom_mask": (n, NUM_ATOMS), "residue_index": (n,),
            "insertion_code": (n,), "b_factors": (n, NUM_ATOMS),
        }
        arrays = {name: _to_numpy(getattr(self, name)) for name in expected}
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise BadStructureError(f"{where}: expected {name} of shape {list(shape)}, got {list(arrays[name].shape)}")
        mask = arrays["atom_mask"].astype(bool)
        pos = np.array(arrays["atom_positions"], dtype=np.float32)
        bad = ~np.isfinite(pos).all(-1) & mask
        if bad.any():
            res, atom = np.argwhere(bad)[0]
            raise BadStructureError(
                f"{where}: {int(bad.sum())} present atom(s) have NaN/inf coordinates, first at residue "
                f"position {res} (atom {ATOM_TYPES[atom]}); expected finite coordinates in Å"
            )
        bfac = np.array(arrays["b_factors"], dtype=np.float32)
        if not np.isfinite(bfac[mask]).all():
            raise BadStructureError(f"{where}: b_factors contain NaN/inf for present atoms")
        pos[~mask] = 0.0
        bfac[~mask] = 0.0
        if not np.issubdtype(arrays["residue_index"].dtype, np.integer):
            raise BadStructureError(f"{where}: residue_index must hold integers, got {arrays['residue_index'].dtype}")
        icode = np.array([str(c).strip() for c in arrays["insertion_code"]], dtype=str)
        if not isinstance(self.chain_id, str) or not self.chain_id.strip():
            raise BadStructureError(f"{where}: chain_id must be a non-empty string")
        put("aatype", aatype.astype(np.int64, copy=True))
        put("atom_positions", pos)
        put("atom_mask", mask.copy())
        put("residue_index", arrays["residue_index"].astype(np.int64, copy=True))
        put("insertion_code", icode)
        put("b_factors", bfac)
        put("name", str(self.name))

    # --- descriptive properties -----------------------------------------------------------
    def __repr__(self) -> str:
        seq = self.sequence if self.length <= 40 else self.sequence[:37] + "..."
        return f"ProteinChain(name={self.name!r}, chain_id={self.chain_id!r}, length={self.length}, sequence={seq!r})"

    def __len__(self) -> int:
        return self.length

    @property
    def length(self) -> int:
        return int(self.aatype.shape[0])

    @property
    def sequence(self) -> str:
        """One-letter sequence; unknown/non-standard residues are ``X``."""
        if "sequence" not in self._cache:
            self._cache["sequence"] = tokens_to_sequence(self.aatype)
        return self._cache["sequence"]

    @property
    def backbone_mask(self) -> np.ndarray:
        """[N] bool: N, CA and C all present."""
        return self.atom_mask[:, [N_IDX, CA_IDX, C_IDX]].all(-1)

    @property
    def missing_backbone(self) -> np.ndarray:
        """[M] int64 positions (0-based) of residues lacking N, CA or C."""
        return np.flatnonzero(~self.backbone_mask)

    def residue_labels(self) -> list[str]:
        """Residue names as users write them: chain + author number + insertion code, e.g. ``B42C``."""
        return [f"{self.chain_id}{r}{c}" for r, c in zip(self.residue_index.tolist(), self.insertion_code.tolist())]

    def chain_breaks(self) -> np.ndarray:
        """Positions ``i`` (0-based) where residue ``i + 1`` is not bonded to residue ``i``.

        Geometry decides whenever the atoms allow it: a break if C(i)-N(i+1) > 2.0 Å, or, when
        that pair is missing, CA(i)-CA(i+1) > 4.2 Å. Only when neither pair is present does the
        numbering decide: a break unless the next residue has the next number or the same
        number with another insertion code. (Numbering skips with bonded atoms, common in
        antibody numbering schemes and seen in 1OSM, are therefore not breaks.)
        """
        if self.length < 2:
            return np.zeros(0, dtype=np.int64)
        m, x = self.atom_mask, self.atom_positions
        cn_ok = m[:-1, C_IDX] & m[1:, N_IDX]
        caca_ok = m[:-1, CA_IDX] & m[1:, CA_IDX]
        cn = np.linalg.norm(x[:-1, C_IDX] - x[1:, N_IDX], axis=-1)
        caca = np.linalg.norm(x[:-1, CA_IDX] - x[1:, CA_IDX], axis=-1)
        step = np.diff(self.residue_index)
        same_num_new_icode = (step == 0) & (self.insertion_code[:-1] != self.insertion_code[1:])
        numbered_next = (step == 1) | same_num_new_icode
        broken = np.where(cn_ok, cn > PEPTIDE_BOND_MAX, np.where(caca_ok, caca > CA_CA_MAX, ~numbered_next))
        return np.flatnonzero(broken).astype(np.int64)

    def backbone(self) -> tuple[np.ndarray, np.ndarray]:
        """Backbone atoms N, CA, C, O: positions [N, 4, 3] float32 Å and mask [N, 4] bool."""
        idx = list(BACKBONE4)
        return self.atom_positions[:, idx].copy(), self.atom_mask[:, idx].copy()

    # --- derived chains -----------------------------------------------------------------------
    def select(self, mask: Any) -> ProteinChain:
        """A new chain with the residues picked by a [N] bool mask or an array of positions."""
        sel = _to_numpy(mask)
        if sel.dtype == bool:
            if sel.shape != (self.length,):
                raise ValueError(f"expected a boolean mask of shape [{self.length}], got {list(sel.shape)}")
            sel = np.flatnonzero(sel)
        elif sel.size and not np.issubdtype(sel.dtype, np.integer):
            raise ValueError(f"expected a boolean mask or integer positions, got dtype {sel.dtype}")
        sel = sel.astype(np.int64).reshape(-1)
        if sel.size == 0:
            raise BadStructureError(f"selection from {self.name!r} chain {self.chain_id} keeps 0 residues; expected at least 1")
        return ProteinChain(
            aatype=self.aatype[sel], atom_positions=self.atom_positions[sel], atom_mask=self.atom_mask[sel],
            residue_index=self.residue_index[sel], insertion_code=self.insertion_code[sel],
            b_factors=self.b_factors[sel], chain_id=self.chain_id, name=self.name,
        )

    def with_chain_id(self, chain_id: str) -> ProteinChain:
        """The same chain under another chain id (e.g. before writing several designs together)."""
        return ProteinChain(self.aatype, self.atom_positions, self.atom_mask, self.residue_index,
                            self.insertion_code, self.b_factors, chain_id=chain_id, name=self.name)

    # --- constructors -------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, chain: str | None = None, *, model: int = 1) -> ProteinChain:
        """Read one chain from a PDB/mmCIF file (optionally gzipped).

        With ``chain=None`` the file must hold exactly one protein chain; otherwise the error
        lists the chains so the caller can pick one (we do not guess).
        """
        from multiflow.data.io import read_structure

        if chain is None:
            chains = read_structure(path, model=model)
            if len(chains) > 1:
                ids = ", ".join(c.chain_id for c in chains)
                raise BadStructureError(f"{path} holds {len(chains)} protein chains ({ids}); pass chain=<id> to pick one")
            return chains[0]
        return read_structure(path, chains=[chain], model=model)[0]

    @classmethod
    def from_backbone(
        cls,
        backbone: np.ndarray | torch.Tensor,
        aatype: np.ndarray | torch.Tensor | None = None,
        *,
        sequence: str | None = None,
        chain_id: str = "A",
        residue_index: np.ndarray | None = None,
        mask: np.ndarray | torch.Tensor | None = None,
        b_factors: np.ndarray | None = None,
        name: str = "design",
    ) -> ProteinChain:
        """A chain from designed backbone coordinates ``[N, 4, 3]`` (N, CA, C, O) or ``[N, 3, 3]``.

        Give the residue types as ``aatype`` tokens or as a one-letter ``sequence`` (not both);
        with neither, every residue is ``X``. ``mask [N]`` marks residues whose coordinates are
        real (default all); ``residue_index`` defaults to 1..N; ``b_factors [N]`` (e.g. pLDDT)
        is copied to every atom of the residue.
        """
        bb = np.asarray(_to_numpy(backbone), dtype=np.float32)
        if bb.ndim != 3 or bb.shape[1] not in (3, 4) or bb.shape[2] != 3:
            raise BadStructureError(f"expected backbone of shape [N, 4, 3] or [N, 3, 3], got {list(bb.shape)}")
        n = bb.shape[0]
        if aatype is not None and sequence is not None:
            raise ValueError("give either aatype or sequence, not both")
        if sequence is not None:
            tokens = sequence_to_tokens(sequence)
        elif aatype is not None:
            tokens = _to_numpy(aatype).astype(np.int64)
        else:
            tokens = np.full(n, UNK_TOKEN, dtype=np.int64)
        if tokens.shape != (n,):
            raise BadStructureError(f"backbone has {n} residues but the sequence/aatype has shape {list(tokens.shape)}")
        res_mask = np.ones(n, bool) if mask is None else _to_numpy(mask).astype(bool)
        if res_mask.shape != (n,):
            raise BadStructureError(f"expected mask of shape [{n}], got {list(res_mask.shape)}")
        positions = np.zeros((n, NUM_ATOMS, 3), np.float32)
        atom_mask = np.zeros((n, NUM_ATOMS), bool)
        slots = list(BACKBONE4[: bb.shape[1]])
        positions[:, slots] = bb
        atom_mask[:, slots] = res_mask[:, None]
        index = np.arange(1, n + 1) if residue_index is None else _to_numpy(residue_index)
        bf = np.zeros((n, NUM_ATOMS), np.float32)
        if b_factors is not None:
            bf[:] = np.asarray(_to_numpy(b_factors), np.float32).reshape(n, 1)
        return cls(
            aatype=tokens, atom_positions=positions, atom_mask=atom_mask, residue_index=index,
            insertion_code=np.full(n, "", dtype="<U1"), b_factors=bf, chain_id=chain_id, name=name,
        )

    # --- writers ------------------------------------------------------------------------------
    def to_pdb(self, path: str | Path) -> Path:
        """Write this chain as a PDB file (atomically; ``.gz`` paths are gzipped)."""
        from multiflow.data.io import write_pdb

        return write_pdb([self], path)

    def to_mmcif(self, path: str | Path) -> Path:
        """Write this chain as an mmCIF file (atomically; ``.gz`` paths are gzipped)."""
        from multiflow.data.io import write_mmcif

        return write_mmcif([self], path)

    def to_pdb_string(self) -> str:
        """The PDB text of this chain."""
        from multiflow.data.io import pdb_string

        return pdb_string([self])
