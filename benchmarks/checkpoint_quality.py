"""Quality of a checkpoint on held-out TS50 and in unconditional co-design; prints tables.

    python benchmarks/checkpoint_quality.py [--checkpoint PATH] [--ts50_limit 50] [--num_steps 100] [--proteinmpnn]
    python benchmarks/checkpoint_quality.py --split val --limit 100 ...   # to choose settings or checkpoints

With ``--split val`` the inverse- and forward-folding parts read the validation chains instead of
TS50 (the test set): compare sampler settings and checkpoints there, then measure TS50 once.

Measures (definitions in README "Evaluation"):
  inverse folding on TS50: sequence recovery over all residues, argmax (temperature 0, one sequence
  per chain; also with purity, i.e. confidence-ordered unmasking) and T = 0.1 (mean over --if_samples
  sequences per chain, then over chains, random unmasking order); with
  --proteinmpnn, ProteinMPNN (v_48_020, the weights shipped in the proteinmpnn package) on the
  same chains with the same protocol at T = 0.1, in the same table;
  forward folding on TS50: CA-RMSD after superposition and TM-score of the predicted backbone;
  co-design at lengths 70/100/150: helix/strand/coil fractions, radius of gyration against the
  PDB trend Rg ≈ 2.2 N^0.38 Å, mean consecutive CA-CA distance, CA-CA clashes per 100 residues.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from multiflow.runtime import tune_process

tune_process()  # what the multiflow command does, before numpy and torch load

import numpy as np

from multiflow.api import load_model
from multiflow.data.io import read_structure
from multiflow.evaluation.metrics import (
    aligned_rmsd,
    sequence_recovery,
    structure_metrics,
)
from multiflow.evaluation.tmscore import tm_score

STRUCTURES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "structures"


def pdb_rg_trend(n: int) -> float:
    """Radius of gyration of compact globular proteins, Å (the usual 2.2 N^0.38 fit)."""
    return 2.2 * n**0.38


def split_chains(split: str, limit: int) -> list:
    """The first ``limit`` chains (sorted by file name) of a split of ../shared/data/structures."""
    folder = STRUCTURES / split
    files = sorted(folder.glob("*.pdb.gz"))[:limit]
    if not files:
        raise SystemExit(f"no structure files under {folder}")
    return [read_structure(f)[0] for f in files]


def inverse_folding(model, chains, num_steps: int, seed: int, samples: int, recycles: int = 0) -> dict[str, float]:
    protocols = (("argmax", 0.0, 1, False), ("argmax+purity", 0.0, 1, True), ("T=0.1", 0.1, samples, False))
    rows: dict[str, list[float]] = {label: [] for label, *_ in protocols}
    for chain in chains:
        for label, temp, n, purity in protocols:
            result = model.inverse_fold([chain], num_sequences=n, seed=seed, num_steps=num_steps, temperature=temp,
                                        purity=purity, recycles=recycles)
            rows[label].append(float(np.mean([sequence_recovery(d.sequence, chain.sequence) for d in result])))
    return {k: float(np.mean(v)) for k, v in rows.items()}


def proteinmpnn_recovery(chains, seed: int, samples: int) -> float:
    """Mean over chains of the mean recovery of ``samples`` ProteinMPNN sequences at T = 0.1."""
    from multiflow.evaluation.inverse_folding import create_inverse_folding_oracle

    oracle = create_inverse_folding_oracle("proteinmpnn", device="cpu")
    per_chain = []
    for chain in chains:
        designs = oracle.design(chain, num_sequences=samples, temperature=0.1, seed=seed)
        per_chain.append(float(np.mean([sequence_recovery(d.sequence, chain.sequence) for d in designs])))
    return float(np.mean(per_chain))


def forward_folding(model, chains, num_steps: int, seed: int, clash_guidance: float | None = None,
                    recycles: int = 0) -> dict[str, float]:
    result = model.fold([(c.name, c.sequence) for c in chains], seed=seed, num_steps=num_steps,
                        clash_guidance=clash_guidance, recycles=recycles)
    rmsd = [aligned_rmsd(d.chains[0], c, atoms="ca") for d, c in zip(result, chains)]
    tm = [tm_score(d.chains[0], c) for d, c in zip(result, chains)]
    return {"ca_rmsd": float(np.mean(rmsd)), "tm_score": float(np.mean(tm))}


def codesign(model, lengths, num_samples: int, num_steps: int, seed: int, clash_guidance: float | None = None,
             recycles: int = 0) -> list[dict[str, float]]:
    table = []
    for length in lengths:
        result = model.generate(lengths=[length], num_samples=num_samples, seed=seed, num_steps=num_steps,
                                clash_guidance=clash_guidance, recycles=recycles)
        per = [structure_metrics(d.chains[0]) for d in result]
        mean = {k: float(np.mean([p[k] for p in per])) for k in per[0] if isinstance(per[0][k], (int, float))}
        mean["length"] = length
        mean["rg_pdb_trend"] = pdb_rg_trend(length)
        table.append(mean)
    return table


PARTS = ("inverse_folding", "forward_folding", "codesign")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="default: the bundled model")
    parser.add_argument("--limit", "--ts50_limit", dest="limit", type=int, default=50,
                        help="use the first N chains of the split (sorted by file name)")
    parser.add_argument("--split", default="ts50", choices=("ts50", "val"),
                        help="chains for inverse and forward folding: the test set (ts50) or val, to choose settings on")
    parser.add_argument("--num_steps", type=int, default=100)
    parser.add_argument("--recycles", type=int, default=0,
                        help="extra self-conditioned passes per sampler step, in every part (default 0)")
    parser.add_argument("--codesign_samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--if_samples", type=int, default=4, help="sequences per TS50 chain at T = 0.1")
    parser.add_argument("--proteinmpnn", action="store_true", help="also ProteinMPNN's recovery (same chains, T = 0.1)")
    parser.add_argument("--parts", default="inverse_folding,forward_folding,codesign",
                        help="comma-separated subset to measure (run parts as separate processes, one per core)")
    parser.add_argument("--clash_guidance", type=float, default=None,
                        help="co-design and folding: the sampler's clash guidance (default: the sampler default; 0 = the model alone)")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        parser.error(f"--parts takes a subset of {','.join(PARTS)}, got {args.parts!r}")
    model = load_model(args.checkpoint, device="cpu")
    chains = split_chains(args.split, args.limit)
    start = time.time()
    inv, fwd, cod = None, None, None
    if "inverse_folding" in parts:
        inv = inverse_folding(model, chains, args.num_steps, args.seed, args.if_samples, args.recycles)
        if args.proteinmpnn:
            inv["proteinmpnn T=0.1"] = proteinmpnn_recovery(chains, args.seed, args.if_samples)
    if "forward_folding" in parts:
        fwd = forward_folding(model, chains, args.num_steps, args.seed, args.clash_guidance, args.recycles)
    if "codesign" in parts:
        cod = codesign(model, (70, 100, 150), args.codesign_samples, args.num_steps, args.seed, args.clash_guidance,
                       args.recycles)
    guidance = model.settings.clash_guidance if args.clash_guidance is None else args.clash_guidance
    print(f"checkpoint: {model.loaded.path} (sha256 {model.loaded.sha256[:12]}), {args.num_steps} steps, "
          f"recycles {args.recycles}, clash_guidance {guidance}, "
          f"{args.split} chains: {len(chains)}, parts: {','.join(parts)}, wall {time.time() - start:.0f} s")
    if inv is not None:
        print(f"{args.split} sequence recovery ({len(chains)} chains; T=0.1 rows: {args.if_samples} sequences per chain)")
        print(f"{'model':>28} | {'protocol':>13} | recovery")
        for key, value in inv.items():
            who, protocol = (("ProteinMPNN v_48_020", "T=0.1") if key.startswith("proteinmpnn")
                             else ("multiflow (this checkpoint)", key))
            print(f"{who:>28} | {protocol:>13} | {value:.3f}")
    if fwd is not None:
        print(f"forward folding: CA-RMSD {fwd['ca_rmsd']:.2f} Å  TM-score {fwd['tm_score']:.3f}")
    if cod is not None:
        keys = ["length", "helix_frac", "strand_frac", "coil_frac", "radius_of_gyration", "rg_pdb_trend",
                "ca_ca_mean", "clashes_per_100"]
        print(" | ".join(f"{k[:13]:>13}" for k in keys))
        for row in cod:
            print(" | ".join(f"{row.get(k, float('nan')):>13.3f}" for k in keys))
    if args.json:
        results = {"inverse_folding": inv, "forward_folding": fwd, "codesign": cod}
        Path(args.json).write_text(json.dumps({**{k: v for k, v in results.items() if v is not None},
                                               "split": args.split, "chains": len(chains), "num_steps": args.num_steps,
                                               "recycles": args.recycles,
                                               "clash_guidance": guidance,
                                               "checkpoint_sha256": model.loaded.sha256}, indent=2))


if __name__ == "__main__":
    main()
