"""How many training chains the coil filter keeps, and how close P-SEA comes to DSSP's filter.

    python benchmarks/coil_filter.py --processed processed [--splits train,train_extra]

``data.max_coil_fraction`` tests ``coil_frac`` of ``metadata.csv``: the fraction of residues
that biotite's P-SEA (CA atoms only) calls coil. MultiFlow filters at a coil fraction of 0.5
from DSSP (3 states: H, G, I -> helix; E, B -> strand; the rest coil). The shared manifest has a
DSSP string per chain, so this prints, for P-SEA thresholds, how many chains each keeps and on
what fraction of chains its decision agrees with DSSP <= 0.5.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from multiflow.data.datamodule import read_metadata

MANIFEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "structures" / "manifest.tsv"
DSSP_NOT_COIL = set("HGIEB")


def dssp_coil_fraction(dssp8: str) -> float:
    return sum(c not in DSSP_NOT_COIL for c in dssp8) / len(dssp8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processed", required=True, help="folder written by `multiflow preprocess` (metadata.csv)")
    parser.add_argument("--manifest", default=str(MANIFEST), help="manifest.tsv with chain_id and dssp8 columns")
    parser.add_argument("--splits", default="train,train_extra")
    parser.add_argument("--dssp_threshold", type=float, default=0.5)
    args = parser.parse_args()
    with open(args.manifest, newline="") as handle:
        dssp = {r["chain_id"]: r["dssp8"] for r in csv.DictReader(handle, delimiter="\t") if r["dssp8"]}
    splits = args.splits.split(",")
    # metadata's example_id is <manifest chain id>_<chain letter>, e.g. 1A12_C_C for 1A12_C.pdb.gz
    psea = {r["example_id"].rsplit("_", 1)[0]: float(r["coil_frac"])
            for r in read_metadata(Path(args.processed)) if r["split"] in splits}
    pairs = [(coil, dssp_coil_fraction(dssp[chain])) for chain, coil in psea.items() if chain in dssp]
    if not pairs:
        raise SystemExit(f"no chain of splits {args.splits} in {args.processed} has a DSSP string in {args.manifest}")
    n = len(pairs)
    by_dssp = [d <= args.dssp_threshold for _, d in pairs]
    print(f"{n:,} chains of {args.splits}; mean coil fraction P-SEA {sum(p for p, _ in pairs) / n:.3f}, "
          f"DSSP {sum(d for _, d in pairs) / n:.3f}; DSSP <= {args.dssp_threshold} keeps {sum(by_dssp):,}")
    print("| P-SEA max_coil_fraction | chains kept | agrees with DSSP filter |\n|---|---|---|")
    for threshold in (0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 1.0):
        keep = [p <= threshold for p, _ in pairs]
        agree = sum(a == b for a, b in zip(keep, by_dssp)) / n
        print(f"| {threshold} | {sum(keep):,} ({100 * sum(keep) / n:.0f} %) | {100 * agree:.1f} % |")


if __name__ == "__main__":
    main()
