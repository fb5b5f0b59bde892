"""ESM2 pseudo-perplexity from a local fair-esm checkpoint (nothing is downloaded).

Pseudo-perplexity of a sequence a (length L) under a masked language model:

    PPPL(a) = exp( −(1/L') Σ_i log p(a_i | a with position i masked) )

over the L' positions holding one of the 20 standard amino acids (``X`` is skipped). Each
position is masked once; the L masked copies run as batches of at most ``max_tokens_per_batch``
tokens, so one forward pass scores many positions.

Weights: a fair-esm ESM2 file such as ``esm2_t33_650M_UR50D.pt`` (its name must start with
``esm2``, which is how fair-esm recognises the architecture), given as a path or found under
``$MULTIFLOW_WEIGHTS``. A ``<name>-contact-regression.pt`` beside it is used when present and not
needed otherwise (contacts are not used here).
"""

from __future__ import annotations

import argparse
import math
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from multiflow.constants import RESTYPES
from multiflow.errors import MissingWeightsError
from multiflow.evaluation.folding import clean_sequences
from multiflow.evaluation.weights import WEIGHTS_ENV, default_weights_path, require_module

ESM2_DEFAULT: str = "esm2_t33_650M_UR50D.pt"
"""Default checkpoint file name under ``$MULTIFLOW_WEIGHTS``."""


def _missing(path: Path, problem: str) -> MissingWeightsError:
    return MissingWeightsError(
        f"ESM2 weights not found: {problem}. Put a fair-esm ESM2 checkpoint (e.g. {ESM2_DEFAULT}, and optionally "
        f"{Path(ESM2_DEFAULT).stem}-contact-regression.pt beside it) at {path}, or pass another file with "
        f"--esm2-path FILE / load_esm2(FILE), or set {WEIGHTS_ENV} to the folder holding {ESM2_DEFAULT}. "
        "multiflow never downloads weights at run time."
    )


def load_esm2(path: str | Path | None = None, *, trust_checkpoint: bool = False) -> tuple[torch.nn.Module, object]:
    """``(model, alphabet)`` from a local fair-esm ESM2 checkpoint (default ``$MULTIFLOW_WEIGHTS/esm2_t33_650M_UR50D.pt``).

    Uses ``esm.pretrained.load_model_and_alphabet_local`` when the contact-regression file sits
    beside the checkpoint, else fair-esm's core loader without it. Checkpoints are unpickled
    with tensors and argparse namespaces only; ``trust_checkpoint=True`` allows any Python
    object (only for files you trust).
    """
    path = Path(path).expanduser() if path is not None else default_weights_path(ESM2_DEFAULT)
    if path.is_dir():
        found = sorted(path.glob("esm2_*.pt"))
        found = [p for p in found if not p.name.endswith("-contact-regression.pt")]
        if not found:
            raise _missing(path / ESM2_DEFAULT, f"no esm2_*.pt file in {path}")
        path = found[0]
    if not path.is_file():
        raise _missing(path, f"{path} does not exist")
    if not path.name.startswith("esm2"):
        raise MissingWeightsError(f"{path}: fair-esm picks the architecture from the file name, which must start with 'esm2' "
                                  f"(e.g. {ESM2_DEFAULT}); rename the file")
    pretrained = require_module("esm.pretrained", purpose="ESM2 pseudo-perplexity", install="pip install fair-esm")
    regression = Path(str(path.with_suffix("")) + "-contact-regression.pt")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            if regression.is_file() and not trust_checkpoint:
                model, alphabet = pretrained.load_model_and_alphabet_local(str(path))
            else:
                data = torch.load(str(path), map_location="cpu", weights_only=not trust_checkpoint)
                reg = torch.load(str(regression), map_location="cpu", weights_only=not trust_checkpoint) if regression.is_file() else None
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Regression weights not found")
                    model, alphabet = pretrained.load_model_and_alphabet_core(path.stem, data, reg)
    except pickle.UnpicklingError as err:
        raise MissingWeightsError(f"{path} holds Python objects besides tensors ({err}); if you trust the file, "
                                  "load it with trust_checkpoint=True") from err
    return model.eval(), alphabet


class ESM2Scorer:
    """Masked-marginal scores of sequences under an ESM2 model."""

    def __init__(self, model: torch.nn.Module, alphabet, *, device: str | torch.device | None = None,
                 max_tokens_per_batch: int = 8192, name: str = "esm2") -> None:
        self.device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.alphabet = alphabet
        self.max_tokens_per_batch = int(max_tokens_per_batch)
        self.name = name

    @classmethod
    def from_local(cls, path: str | Path | None = None, *, trust_checkpoint: bool = False, **options) -> ESM2Scorer:
        """Load with :func:`load_esm2`; ``options`` go to the constructor."""
        model, alphabet = load_esm2(path, trust_checkpoint=trust_checkpoint)
        return cls(model, alphabet, name=(Path(path).stem if path is not None else Path(ESM2_DEFAULT).stem), **options)

    def _tokens(self, sequence: str) -> torch.Tensor:
        a = self.alphabet
        ids = [a.cls_idx] + [a.get_idx(c) for c in sequence] + [a.eos_idx]  # [L + 2]
        return torch.tensor(ids, dtype=torch.long)

    @torch.no_grad()
    def masked_log_likelihoods(self, sequence: str) -> np.ndarray:
        """``log p(a_i | a with i masked)`` for each position [L] (NaN where the letter is not a standard amino acid)."""
        (sequence,) = clean_sequences([sequence])
        tokens = self._tokens(sequence)  # [L + 2]
        positions = [i for i, c in enumerate(sequence) if c in RESTYPES]
        out = np.full(len(sequence), np.nan)
        rows = max(1, self.max_tokens_per_batch // tokens.numel())
        for start in range(0, len(positions), rows):
            pos = torch.tensor(positions[start : start + rows])  # residue positions masked in this batch
            batch = tokens.repeat(len(pos), 1)  # [b, L + 2]
            batch[torch.arange(len(pos)), pos + 1] = self.alphabet.mask_idx  # +1: the BOS token
            logits = self.model(batch.to(self.device))["logits"].float()  # [b, L + 2, V]
            logp = torch.log_softmax(logits[torch.arange(len(pos)), pos + 1], dim=-1)  # [b, V]
            out[pos.numpy()] = logp.gather(-1, tokens[pos + 1, None].to(self.device))[:, 0].cpu().double().numpy()
        return out

    def pseudo_perplexity(self, sequences: Sequence[str]) -> list[float]:
        """``exp(mean masked NLL)`` per sequence; NaN for a sequence with no standard residue."""
        result = []
        for seq in clean_sequences(sequences):
            ll = self.masked_log_likelihoods(seq)
            ll = ll[~np.isnan(ll)]
            result.append(math.exp(-float(ll.mean())) if ll.size else float("nan"))
        return result


def pseudo_perplexity(sequences: Sequence[str], scorer: ESM2Scorer) -> list[float]:
    """ESM2 pseudo-perplexity of each sequence (see the module docstring)."""
    return scorer.pseudo_perplexity(sequences)
