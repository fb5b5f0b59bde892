"""Training examples and padded batches: the records between the data pipeline, flows and model.

``ChainExample`` is one processed chain (numpy, what a pipeline shard stores);
``Batch`` is a padded stack of examples as torch tensors (what flows and model consume).
Coordinates are in Å in both; the flows convert to nm (``constants.TRANS_SCALE``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from multiflow.constants import MASK_TOKEN, NUM_AA, UNK_TOKEN
from multiflow.errors import BadStructureError


@dataclass(frozen=True)
class ChainExample:
    """One chain ready for training. N residues; all arrays share the first dimension."""

    name: str
    aatype: np.ndarray  # [N] int64, chain alphabet 0..20 (20 = X unknown)
    trans: np.ndarray  # [N, 3] float32 Å, CA positions (frame origins)
    rots: np.ndarray  # [N, 3, 3] float32, backbone frame rotations (columns = local axes)
    res_mask: np.ndarray  # [N] bool, residue has N, CA, C (frame defined)
    residue_index: np.ndarray  # [N] int64, author residue numbers
    chain_index: np.ndarray  # [N] int64, 0 for single chains
    seq_target: np.ndarray | None = None  # [N, 20] float32, a teacher's amino-acid probabilities (distillation);
                                          # rows of zeros: no target for that residue

    def __post_init__(self) -> None:
        n = self.aatype.shape[0]
        expected = {
            "aatype": (n,), "trans": (n, 3), "rots": (n, 3, 3),
            "res_mask": (n,), "residue_index": (n,), "chain_index": (n,),
        }
        if self.seq_target is not None:
            expected["seq_target"] = (n, NUM_AA)
        for key, shape in expected.items():
            got = getattr(self, key).shape
            if got != shape:
                raise BadStructureError(f"{self.name}: field {key} has shape {got}, expected {shape}")
        if n == 0:
            raise BadStructureError(f"{self.name}: example has 0 residues")
        if not np.isfinite(self.trans[self.res_mask]).all():
            raise BadStructureError(f"{self.name}: non-finite coordinates in present residues")
        if self.seq_target is not None and not (np.isfinite(self.seq_target).all() and (self.seq_target >= 0).all()):
            raise BadStructureError(f"{self.name}: seq_target holds negative or non-finite probabilities")

    @property
    def length(self) -> int:
        return int(self.aatype.shape[0])

    def crop(self, start: int, length: int) -> "ChainExample":
        """Contiguous crop [start, start+length)."""
        sl = slice(start, start + length)
        return replace(self, **{f.name: getattr(self, f.name)[sl] for f in fields(self)
                                if f.name != "name" and getattr(self, f.name) is not None})

    @classmethod
    def from_npz(cls, data: dict[str, np.ndarray], name: str) -> "ChainExample":
        n = data["aatype"].shape[0]
        return cls(
            name=name,
            aatype=data["aatype"].astype(np.int64),
            trans=data["trans"].astype(np.float32),
            rots=data["rots"].astype(np.float32),
            res_mask=data["res_mask"].astype(bool),
            residue_index=data["residue_index"].astype(np.int64),
            chain_index=data["chain_index"].astype(np.int64) if "chain_index" in data else np.zeros(n, np.int64),
        )


@dataclass(frozen=True)
class Batch:
    """B padded examples of up to N residues. Padding has ``res_mask`` False."""

    aatype: torch.Tensor  # [B, N] int64, flow vocabulary: 0..19, MASK (20) where unknown or padding
    trans: torch.Tensor  # [B, N, 3] float32 Å, frame origins (CA)
    rots: torch.Tensor  # [B, N, 3, 3] float32, frame rotations
    res_mask: torch.Tensor  # [B, N] bool, real residue with a defined frame
    seq_mask: torch.Tensor  # [B, N] bool, residue identity known (not X, not padding)
    residue_index: torch.Tensor  # [B, N] int64, residue numbers (relative positions only matter)
    chain_index: torch.Tensor  # [B, N] int64
    seq_target: torch.Tensor | None = None  # [B, N, 20] float32 teacher probabilities (zeros on padding), or None

    @property
    def batch_size(self) -> int:
        return int(self.aatype.shape[0])

    @property
    def num_res(self) -> int:
        return int(self.aatype.shape[1])

    @property
    def device(self) -> torch.device:
        return self.trans.device

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                        for f in fields(self)})

    def rigid(self):
        """Frames as a :class:`~multiflow.geometry.rigid.Rigid` [B, N] (translations in Å)."""
        from multiflow.geometry.rigid import Rigid

        return Rigid(rots=self.rots, trans=self.trans)


def collate(examples: list[ChainExample]) -> Batch:
    """Pad a list of examples to the longest one. Unknown residues (X) become MASK, seq_mask False.

    ``seq_target`` is stacked when every example has one, None when none has; a mix is an error.
    """
    if not examples:
        raise ValueError("collate() needs at least one example")
    with_target = [ex.seq_target is not None for ex in examples]
    if any(with_target) and not all(with_target):
        missing = [ex.name for ex, has in zip(examples, with_target) if not has]
        raise ValueError(f"seq_target is set for some examples of a batch but not for {missing[:5]}")
    b, n = len(examples), max(ex.length for ex in examples)
    aatype = torch.full((b, n), MASK_TOKEN, dtype=torch.long)
    trans = torch.zeros(b, n, 3)
    rots = torch.eye(3).expand(b, n, 3, 3).clone()
    res_mask = torch.zeros(b, n, dtype=torch.bool)
    seq_mask = torch.zeros(b, n, dtype=torch.bool)
    residue_index = torch.zeros(b, n, dtype=torch.long)
    chain_index = torch.zeros(b, n, dtype=torch.long)
    for i, ex in enumerate(examples):
        m = ex.length
        aa = torch.from_numpy(ex.aatype)
        known = (aa != UNK_TOKEN) & (aa < NUM_AA)
        aatype[i, :m] = torch.where(known, aa, torch.full_like(aa, MASK_TOKEN))
        res_mask[i, :m] = torch.from_numpy(ex.res_mask)
        seq_mask[i, :m] = known & res_mask[i, :m]
        trans[i, :m] = torch.from_numpy(ex.trans) * res_mask[i, :m, None]
        rots[i, :m] = torch.where(res_mask[i, :m, None, None], torch.from_numpy(ex.rots), torch.eye(3))
        residue_index[i, :m] = torch.from_numpy(ex.residue_index)
        chain_index[i, :m] = torch.from_numpy(ex.chain_index)
    seq_target = None
    if all(with_target):
        seq_target = torch.zeros(b, n, NUM_AA)
        for i, ex in enumerate(examples):
            seq_target[i, : ex.length] = torch.from_numpy(np.asarray(ex.seq_target, np.float32))
    return Batch(aatype, trans, rots, res_mask, seq_mask, residue_index, chain_index, seq_target)
