"""One-shot inverse folding: how well one forward pass reads the sequence off a clean backbone.

    python benchmarks/one_shot_recovery.py --checkpoint PATH [PATH ...] [--split val] [--limit 100]

For every chain of ``../shared/data/structures/<split>`` the model sees the clean structure
(t = 1, every frame fixed) and a fully masked sequence (t_aa = 0), the state the inverse-folding
sampler starts from. One forward pass, no sampling. Prints per checkpoint: the mean cross-entropy
of the native residue (nats per residue; 3.00 = uniform over 20) and the argmax identity, both
pooled over all residues of all chains, and the identity averaged per chain (each chain's
fraction, then the mean over chains: how ``benchmarks/checkpoint_quality.py`` averages recovery).
``--by_coil F`` adds the per-chain identity of the chains whose coil fraction (P-SEA, as in
``metadata.csv`` and the training filter ``data.max_coil_fraction``) is at most F and of the rest.

It is a training-progress probe, cheap enough to run on every saved checkpoint (100 val chains:
~10 s on 2 cores). It is not the sampled recovery that ``checkpoint_quality.py`` measures, but for
the bundled model the per-chain column and that benchmark agree: 34.7 % on the 100 val chains
here, 34.7 % there at 1 and at 100 sampling steps (argmax); pooled, the same predictions read
35.8 % (longer chains are recovered better). Use ``--split val`` to compare checkpoints, so that
TS50 stays a test set.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from multiflow.runtime import tune_process

tune_process()  # what the multiflow command does, before numpy and torch load

import torch

from multiflow.constants import MASK_TOKEN, TRANS_SCALE
from multiflow.data.batch import ChainExample, collate
from multiflow.data.features import chain_to_features, summarize
from multiflow.data.io import read_structure
from multiflow.sampling.solver import FlowState
from multiflow.training.checkpoint import load_checkpoint

STRUCTURES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "structures"


def load_examples(split: str, limit: int) -> tuple[list[ChainExample], list[float]]:
    """The split's chains and their coil fractions (P-SEA)."""
    files = sorted((STRUCTURES / split).glob("*.pdb.gz"))[:limit]
    if not files:
        raise SystemExit(f"no structures under {STRUCTURES / split}")
    examples, coil = [], []
    for f in files:
        chain = read_structure(f)[0]
        features = chain_to_features(chain)
        examples.append(ChainExample.from_npz(features, f.name))
        coil.append(summarize(chain, features)["coil_frac"])
    return examples, coil


@torch.no_grad()
def one_shot(model, examples: list[ChainExample], batch_size: int = 8) -> tuple[float, float, list[float], int]:
    """(mean CE nats, argmax identity, both pooled over residues; each chain's identity; residues scored)."""
    total_ce, total_hit, total_n, per_chain = 0.0, 0.0, 0, []
    device = next(model.parameters()).device
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start:start + batch_size]).to(device)
        b = batch.batch_size
        ones = torch.ones(b, device=device)
        trans = batch.trans / TRANS_SCALE  # model units (nm)
        state = FlowState(trans=trans, rots=batch.rots, aatype=torch.full_like(batch.aatype, MASK_TOKEN))
        pred = model(state, {"trans": ones, "rots": ones, "aa": torch.zeros(b, device=device)},
                     res_mask=batch.res_mask, residue_index=batch.residue_index, chain_index=batch.chain_index,
                     fixed_structure=batch.res_mask, fixed_sequence=torch.zeros_like(batch.res_mask))
        logp = torch.log_softmax(pred.logits[..., :20].float(), dim=-1)  # [B, N, 20]
        scored = batch.seq_mask
        target = torch.where(scored, batch.aatype, torch.zeros_like(batch.aatype))
        ce = -logp.gather(-1, target[..., None]).squeeze(-1)  # [B, N]
        hit = (logp.argmax(-1) == target).float()
        total_ce += float(ce[scored].sum())
        total_hit += float(hit[scored].sum())
        total_n += int(scored.sum())
        counts = scored.sum(-1)  # [B]
        per_chain += ((hit * scored).sum(-1)[counts > 0] / counts[counts > 0]).tolist()
    return total_ce / total_n, total_hit / total_n, per_chain, total_n


def mean_percent(values: list[float]) -> str:
    return f"{100 * sum(values) / len(values):.1f} % ({len(values)})" if values else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", nargs="+", required=True, help="slim .pt or Lightning .ckpt files")
    parser.add_argument("--split", default="val", help="folder under ../shared/data/structures (default: val)")
    parser.add_argument("--limit", type=int, default=100, help="at most this many chains (sorted by file name)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--by_coil", type=float, default=None, metavar="F",
                        help="also the per-chain identity of chains with coil fraction <= F and > F (chains in brackets)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    examples, coil = load_examples(args.split, args.limit)
    print(f"{len(examples)} chains of {args.split}, clean structure, all positions masked, one forward pass")
    columns = ["checkpoint", "step", "CE (nats)", "perplexity", "identity (pooled)", "identity (per chain)"]
    if args.by_coil is not None:
        columns += [f"per chain, coil <= {args.by_coil}", f"per chain, coil > {args.by_coil}"]
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for path in args.checkpoint:
        loaded = load_checkpoint(path, device="cpu")
        ce, identity, per_chain, n = one_shot(loaded.model, examples)
        step = loaded.meta.get("steps", loaded.meta.get("global_step", ""))  # total steps of an exported model
        cells = [path, step, f"{ce:.3f}", f"{math.exp(ce):.2f}", f"{100 * identity:.1f} %",
                 f"{100 * sum(per_chain) / len(per_chain):.1f} %"]
        if args.by_coil is not None:
            cells += [mean_percent([x for x, c in zip(per_chain, coil) if c <= args.by_coil]),
                      mean_percent([x for x, c in zip(per_chain, coil) if c > args.by_coil])]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print(f"({n} residues)")


if __name__ == "__main__":
    main()
