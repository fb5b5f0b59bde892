"""ESMFold as a folding oracle, from local weights only (nothing is downloaded at run time).

Two checkpoint formats:
  * Hugging Face ``transformers`` ``EsmForProteinFolding``: a folder with ``config.json`` and
    ``model.safetensors`` (or ``pytorch_model.bin``, or sharded ``*.index.json``). Install with
    ``pip install -e ".[esmfold]"``. Its pLDDT comes out on a 0-1 scale and is multiplied by 100.
  * fair-esm's ``esmfold_3B_v1.pt`` (``esm.pretrained.esmfold_v1``): needs ``openfold``
    importable and the ESM2-3B weights in torch's hub cache; its pLDDT is already 0-100.

Sequences are folded longest first in batches of at most ``max_tokens_per_batch`` residues
(padded length x batch size); ``chunk_size`` makes the trunk's axial attention run in chunks,
trading speed for memory that grows ~linearly rather than quadratically with length.
"""

from __future__ import annotations

import argparse
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiflow.constants import CA_IDX
from multiflow.data.tokens import sequence_to_tokens
from multiflow.errors import MissingWeightsError
from multiflow.evaluation.folding import FoldResult, clean_sequences
from multiflow.evaluation.weights import WEIGHTS_ENV, MissingDependencyError, default_weights_path, has_module, require_module

logger = logging.getLogger(__name__)

ESMFOLD_DIR: str = "esmfold_v1"
"""Default folder name under ``$MULTIFLOW_WEIGHTS``."""
HF_WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
FAIR_ESM_CHECKPOINT: str = "esmfold_3B_v1.pt"
_INSTALL = 'pip install -e ".[esmfold]"  (or: pip install transformers)'


def _where_to_put(path: Path, problem: str) -> MissingWeightsError:
    return MissingWeightsError(
        f"ESMFold weights not found: {problem}. Put the Hugging Face 'facebook/esmfold_v1' files (config.json and "
        f"model.safetensors or pytorch_model.bin) in {path}/ — e.g. on a machine with internet run "
        f"`huggingface-cli download facebook/esmfold_v1 --local-dir esmfold_v1` and copy the folder there — or give "
        f"another folder with --esmfold-dir DIR / ESMFoldOracle.from_local(DIR), or set {WEIGHTS_ENV} so that "
        f"${WEIGHTS_ENV}/{ESMFOLD_DIR}/ holds them. A fair-esm '{FAIR_ESM_CHECKPOINT}' file also works (needs openfold). "
        "multiflow never downloads weights at run time."
    )


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class ESMFoldOracle:
    """ESMFold wrapped as a :class:`~multiflow.evaluation.folding.FoldingOracle` (``name`` ``"esmfold"``).

    Build it with :meth:`from_local`; the constructor takes an already loaded model.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        backend: str = "transformers",
        chunk_size: int | None = None,
        max_tokens_per_batch: int = 1024,
        num_recycles: int | None = None,
        device: str | torch.device | None = None,
        name: str = "esmfold",
    ) -> None:
        if backend not in ("transformers", "fair-esm"):
            raise ValueError(f"backend must be 'transformers' or 'fair-esm', got {backend!r}")
        if max_tokens_per_batch < 1:
            raise ValueError(f"max_tokens_per_batch must be >= 1, got {max_tokens_per_batch}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be None or >= 1, got {chunk_size}")
        self.device = torch.device(device) if device is not None else _default_device()
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu":
            self.model.float()  # ESMFold keeps its language model in fp16, which CPUs run slowly or not at all
        self.backend = backend
        self.name = name
        self.num_recycles = num_recycles
        self.max_tokens_per_batch = int(max_tokens_per_batch)
        self.chunk_size = chunk_size
        trunk_owner = self.model if backend == "fair-esm" else self.model.trunk
        trunk_owner.set_chunk_size(chunk_size)

    @property
    def cache_key(self) -> str:
        """Name plus the settings that change predictions (chunking and batching do not)."""
        return f"{self.name}:recycles={self.num_recycles if self.num_recycles is not None else 'default'}"

    # --- loading ------------------------------------------------------------------------------
    @classmethod
    def from_local(cls, path: str | Path | None = None, *, trust_checkpoint: bool = False, **options: Any) -> ESMFoldOracle:
        """Load ESMFold from ``path`` (default ``$MULTIFLOW_WEIGHTS/esmfold_v1``).

        ``path`` is a Hugging Face folder (``config.json`` + weights) or a fair-esm ``.pt`` file
        (or a folder holding ``esmfold_3B_v1.pt``). ``options`` go to the constructor:
        ``chunk_size``, ``max_tokens_per_batch``, ``num_recycles``, ``device``, ``name``.
        ``trust_checkpoint`` lets a fair-esm checkpoint be unpickled in full (only for files you trust).
        """
        path = Path(path).expanduser() if path is not None else default_weights_path(ESMFOLD_DIR)
        if path.is_file() and path.suffix == ".pt":
            return cls(_load_fair_esm(path, trust_checkpoint), backend="fair-esm", **options)
        if not path.exists():
            raise _where_to_put(path, f"{path} does not exist")
        if not path.is_dir():
            raise _where_to_put(path, f"{path} is neither a folder nor a fair-esm .pt file")
        if not (path / "config.json").is_file() and (path / FAIR_ESM_CHECKPOINT).is_file():
            return cls(_load_fair_esm(path / FAIR_ESM_CHECKPOINT, trust_checkpoint), backend="fair-esm", **options)
        if not (path / "config.json").is_file():
            raise _where_to_put(path, f"{path}/config.json is missing")
        if not any((path / f).is_file() for f in HF_WEIGHT_FILES):
            raise _where_to_put(path, f"{path} has config.json but no weight file ({', '.join(HF_WEIGHT_FILES)})")
        transformers = require_module("transformers", purpose="ESMFold (Hugging Face format)", install=_INSTALL)
        model = transformers.EsmForProteinFolding.from_pretrained(str(path), local_files_only=True)
        return cls(model, backend="transformers", **options)

    # --- folding --------------------------------------------------------------------------------
    def batches(self, sequences: list[str]) -> list[list[int]]:
        """Indices of ``sequences`` grouped into batches, longest first, each within the token budget."""
        order = sorted(range(len(sequences)), key=lambda i: (-len(sequences[i]), i))
        out: list[list[int]] = []
        for i in order:  # the first sequence of a batch is its longest, so size * that length bounds the padded tokens
            if out and (len(out[-1]) + 1) * len(sequences[out[-1][0]]) <= self.max_tokens_per_batch:
                out[-1].append(i)
            else:
                out.append([i])
        return out

    @torch.no_grad()
    def fold(self, sequences: list[str]) -> list[FoldResult]:
        """Predict a structure for each sequence (``X`` allowed); results come back in input order."""
        sequences = clean_sequences(sequences)
        results: list[FoldResult | None] = [None] * len(sequences)
        for batch in self.batches(sequences):
            seqs = [sequences[i] for i in batch]
            logger.debug("%s: folding %d sequence(s) of length <= %d", self.name, len(seqs), len(seqs[0]))
            outs = self._fold_hf(seqs) if self.backend == "transformers" else self._fold_fair_esm(seqs)
            for i, res in zip(batch, outs):
                results[i] = res
        return results  # type: ignore[return-value]

    def _fold_hf(self, seqs: list[str]) -> list[FoldResult]:
        from transformers.models.esm.openfold_utils import atom14_to_atom37, compute_tm

        lengths = [len(s) for s in seqs]
        aatype = torch.zeros(len(seqs), max(lengths), dtype=torch.long)
        mask = torch.zeros_like(aatype)
        for b, s in enumerate(seqs):  # multiflow tokens use the same ARND... order (X = 20) as ESMFold's inputs
            aatype[b, : len(s)] = torch.from_numpy(sequence_to_tokens(s))
            mask[b, : len(s)] = 1
        aatype, mask = aatype.to(self.device), mask.to(self.device)
        position_ids = torch.arange(aatype.shape[1], device=self.device).expand_as(aatype)
        out = self.model(aatype, attention_mask=mask, position_ids=position_ids, num_recycles=self.num_recycles)
        atom37 = atom14_to_atom37(out["positions"][-1], out)  # [B, L, 37, 3] Å
        results = []
        for b, (s, n) in enumerate(zip(seqs, lengths)):
            plddt = 100.0 * out["plddt"][b, :n, CA_IDX]  # transformers predicts lDDT on 0-1
            ptm = compute_tm(out["ptm_logits"][b : b + 1, :n, :n], max_bin=31, no_bins=out["ptm_logits"].shape[-1])
            results.append(self._result(s, atom37[b, :n], out["atom37_atom_exists"][b, :n], plddt, ptm,
                                        out["predicted_aligned_error"][b, :n, :n]))
        return results

    def _fold_fair_esm(self, seqs: list[str]) -> list[FoldResult]:
        from openfold.utils.feats import atom14_to_atom37

        out = self.model.infer(seqs, num_recycles=self.num_recycles)
        atom37 = atom14_to_atom37(out["positions"][-1], out)
        results = []
        for b, s in enumerate(seqs):
            n = len(s)
            pae = out["predicted_aligned_error"][b, :n, :n] if "predicted_aligned_error" in out else None
            results.append(self._result(s, atom37[b, :n], out["atom37_atom_exists"][b, :n],
                                        out["plddt"][b, :n, CA_IDX], out["ptm"][b], pae))  # fair-esm pLDDT is 0-100
        return results

    def _result(self, seq: str, atom37, exists, plddt, ptm, pae) -> FoldResult:
        def np32(t: torch.Tensor) -> np.ndarray:
            return t.detach().float().cpu().numpy()

        return FoldResult.from_atom37(
            seq, np32(atom37), np32(exists) > 0.5, np.clip(np32(plddt), 0.0, 100.0), oracle=self.name,
            ptm=float(np.clip(float(ptm), 0.0, 1.0)), pae=None if pae is None else np32(pae), name=self.name,
        )


def _load_fair_esm(path: Path, trust_checkpoint: bool) -> torch.nn.Module:
    """fair-esm ESMFold from a local ``.pt`` file, refusing any hub download."""
    if not has_module("openfold"):
        raise MissingDependencyError(
            f"{path} is a fair-esm ESMFold checkpoint, which needs the 'openfold' package (not installed here; it "
            "builds CUDA extensions and is not on PyPI). Use the Hugging Face format instead: a folder with "
            f"config.json + model.safetensors, loaded through transformers ({_INSTALL})."
        )
    esmfold_mod = require_module("esm.esmfold.v1.esmfold", purpose="fair-esm ESMFold", install="pip install fair-esm")
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    needed = [hub / "esm2_t36_3B_UR50D.pt", hub / "esm2_t36_3B_UR50D-contact-regression.pt"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:  # fair-esm's ESMFold builds its ESM2-3B from torch's hub cache and would download it otherwise
        raise MissingWeightsError(f"fair-esm ESMFold needs the ESM2-3B weights in torch's hub cache; missing: {', '.join(missing)}")
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=not trust_checkpoint)
    except pickle.UnpicklingError as err:
        raise MissingWeightsError(
            f"{path} holds Python objects besides tensors ({err}); if you trust the file, load it with trust_checkpoint=True"
        ) from err
    with torch.serialization.safe_globals([argparse.Namespace]):  # the ESM2-3B checkpoint stores its config so
        model = esmfold_mod.ESMFold(esmfold_config=data["cfg"]["model"])
    absent = [k for k in set(model.state_dict()) - set(data["model"]) if not k.startswith("esm.")]
    if absent:
        raise MissingWeightsError(f"{path} lacks {len(absent)} ESMFold parameter(s), e.g. {sorted(absent)[:3]}")
    model.load_state_dict(data["model"], strict=False)
    return model
