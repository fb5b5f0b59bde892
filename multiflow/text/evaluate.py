"""Honest evaluation of text models on held-out files.

* :func:`flow_bits_per_byte` - Monte-Carlo negative ELBO (``flows.losses.token_nelbo``: the
  masking- or uniform-noise bound, by the flow's noise) in bits per byte: an UPPER bound on the
  model's NLL, with the number of t samples stated.
* :func:`ar_bits_per_byte` - exact NLL of the causal baseline on the same sequences.
* :func:`sample_quality` - parse/compile rates, unigram entropy, distinct-n and the longest
  n-gram copied from the training split, for a set of token sequences (samples or, as a
  reference, real held-out windows of the same length).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from multiflow.flows.discrete import DiscreteFlow
from multiflow.flows.losses import token_nelbo
from multiflow.text.metrics import NGramIndex, bits_per_byte, distinct_n, python_validity, unigram_entropy
from multiflow.text.sampling import sample_tokens


def _batches(seqs: torch.Tensor, batch_size: int, device: torch.device):
    for i in range(0, seqs.shape[0], batch_size):
        yield seqs[i : i + batch_size].to(device)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def flow_bits_per_byte(model: nn.Module, flow: DiscreteFlow, seqs: torch.Tensor, token_bytes: np.ndarray,
                       t_samples: int = 8, batch_size: int = 16, generator: torch.Generator | None = None) -> dict:
    """NELBO of ``seqs [N, L]`` in bits per byte (and per token), for masking or uniform noise.

    Runs on the model's device; ``generator`` must live on that device too.
    """
    model.eval()
    tb = torch.as_tensor(token_bytes, dtype=torch.float64)
    nats = 0.0
    for x1 in _batches(seqs, batch_size, model_device(model)):
        out = token_nelbo(flow, lambda x, t: model(x, t.float()), x1, torch.ones_like(x1, dtype=torch.bool),
                          num_t_samples=t_samples, generator=generator)
        nats += float(out["nats"].sum())
    n_bytes = int(tb[seqs].sum())
    return {"nelbo_bpb": bits_per_byte(nats, n_bytes), "nelbo_bits_per_token": nats / math.log(2) / seqs.numel(),
            "t_samples": t_samples, "n_sequences": int(seqs.shape[0]), "n_tokens": int(seqs.numel()),
            "n_bytes": n_bytes}


@torch.no_grad()
def ar_bits_per_byte(model: nn.Module, seqs: torch.Tensor, token_bytes: np.ndarray, batch_size: int = 16) -> dict:
    """Exact NLL of the causal model on ``seqs [N, L]`` in bits per byte (each window from BOS)."""
    model.eval()
    nats = sum(float(model.nll(x1).double().sum()) for x1 in _batches(seqs, batch_size, model_device(model)))
    n_bytes = int(torch.as_tensor(token_bytes)[seqs].sum())
    return {"ar_bpb": bits_per_byte(nats, n_bytes), "ar_bits_per_token": nats / math.log(2) / seqs.numel(),
            "n_sequences": int(seqs.shape[0]), "n_bytes": n_bytes}


def sample_quality(token_seqs: list[np.ndarray], tokenizer, index: NGramIndex | None = None,
                   code: bool = True, eos_cut: bool = True) -> dict:
    """Quality/diversity metrics for a set of token sequences.

    Samples are cut at the first EOS before decoding when ``eos_cut`` (a file ends there).
    Distinct-n and entropy are over tokens; memorisation is in tokens of the training stream.
    """
    seqs = []
    for s in token_seqs:
        s = np.asarray(s, dtype=np.int64)
        if eos_cut:
            hits = np.flatnonzero(s == tokenizer.eos_id)
            s = s[: hits[0]] if hits.size else s
        seqs.append(s)
    texts = [tokenizer.decode(s) for s in seqs]
    out = {"n": len(seqs), "mean_len_tokens": float(np.mean([s.size for s in seqs])),
           "unigram_entropy_bits": unigram_entropy([s.tolist() for s in seqs])}
    for n in (1, 2, 3, 4):
        out[f"distinct_{n}"] = distinct_n([s.tolist() for s in seqs], n)
    if code:
        out.update(python_validity(texts))
    if index is not None:
        copied = [index.longest_copied(np.asarray(s)) for s in token_seqs]
        out.update({"copied_max": int(max(copied)), "copied_mean": float(np.mean(copied)),
                    "copied_median": float(np.median(copied))})
    return out


def steps_sweep(model: nn.Module, flow: DiscreteFlow, tokenizer, n: int, length: int, steps_list: list[int], *,
                index: NGramIndex | None = None, code: bool = True, ar_model: nn.Module | None = None,
                temperature: float = 1.0, eta: float = 0.0, seed: int = 0) -> list[dict]:
    """Unconditional samples at each number of steps -> one row of metrics per step count."""
    rows = []
    tb = tokenizer.token_bytes()
    for steps in steps_list:
        gen = torch.Generator(device=model_device(model)).manual_seed(seed)
        t0 = time.perf_counter()
        res = sample_tokens(model, flow, n, length, steps, temperature=temperature, eta=eta, generator=gen)
        dt = time.perf_counter() - t0
        toks = res.tokens.cpu()
        row = {"steps": steps, "nfe": res.nfe, "seconds": dt, "tokens_per_s": toks.numel() / dt}
        row.update(sample_quality([r.numpy() for r in toks], tokenizer, index=index, code=code))
        if ar_model is not None:  # generative bits per byte: how likely the AR baseline finds the samples
            row["gen_ar_bpb"] = ar_bits_per_byte(ar_model, toks, tb)["ar_bpb"]
        rows.append(row)
    return rows


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Plain-text table of selected columns (floats with 3 decimals)."""
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    cells = [[c for c in columns]] + [[fmt(r.get(c, "-")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
