"""The files an evaluation writes: ``metrics.csv``, ``summary.json`` and ``report.png``.

Input: one *record* per evaluated design (a JSON-able dict made by
:mod:`multiflow.evaluation.commands`)::

    {"design": str, "source": str, "length": int, "sequence": str, "has_sequence": bool,
     "structure": {helix_frac, strand_frac, coil_frac, radius_of_gyration, clashes, ...},
     "protocols": [{"protocol": "codesign-1" | "inverse-fold-<N>", "oracle": <folding label>,
                    "inverse_folding_oracle": <label or "">, "n_sequences": int, "sc_rmsd_bb": float,
                    "sc_rmsd_ca": float, "sc_tm": float, "plddt": float | None, "designable": bool,
                    "sequence": <best sequence>, "if_score": float | None, "all_sc_rmsd_bb": [float]}],
     "errors": {protocol: message}, "pseudo_perplexity": float | None,
     "novelty": {"max_tm": float, "nearest": str} | None}

* ``metrics.csv`` — one row per design and protocol (the folding oracle's label in ``oracle``);
  a design without any protocol (no sequence, no inverse folding) gets one ``structure-only`` row.
* ``summary.json`` — designable fraction per protocol, diversity per protocol (clusters at TM 0.5
  among designable designs), novelty (mean max TM to the reference set, when one was given), mean
  secondary-structure composition, oracle labels, settings, versions and skipped inputs.
* ``report.png`` — scRMSD vs length, pLDDT histogram, secondary-structure composition, TM-score
  to the reference set.

Every file is written atomically (temporary file + rename).
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import math
import os
import platform
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multiflow.data.chain import ProteinChain
from multiflow.data.io import _atomic_write
from multiflow.evaluation.metrics import DESIGNABLE_RMSD

STRUCTURE_COLUMNS = ["helix_frac", "strand_frac", "coil_frac", "radius_of_gyration", "clashes", "clashes_per_100",
                     "ca_ca_mean", "ca_ca_deviation", "ca_ca_breaks"]
METRIC_COLUMNS = ["design", "length", "oracle", "protocol", "inverse_folding_oracle", "n_sequences", "sc_rmsd_bb",
                  "sc_rmsd_ca", "sc_tm", "plddt", "designable", "sequence", "if_score", *STRUCTURE_COLUMNS,
                  "pseudo_perplexity", "novelty_max_tm", "nearest_reference", "source", "error"]
STRUCTURE_ONLY = "structure-only"
DEFINITIONS = {
    "sc_rmsd_bb": f"RMSD (Å) over N, CA, C after superposition, design vs structure predicted from a sequence; designable if < {DESIGNABLE_RMSD} Å",
    "sc_rmsd_ca": "as sc_rmsd_bb over CA atoms",
    "sc_tm": "TM-score of the same pair (CA, normalised by the design length)",
    "plddt": "mean pLDDT of the prediction, 0-100; empty when the folding oracle has no confidence",
    "codesign-1": "the design's own sequence folded once",
    "inverse-fold-N": "N sequences redesigned for the backbone, each folded; the lowest sc_rmsd_bb counts",
    "diversity": "clusters of designable designs at TM-score 0.5, divided by their count",
    "novelty": "mean over designs of the highest TM-score to any reference structure",
    "secondary_structure": "helix/strand/coil fractions by P-SEA (biotite)",
}


# --- small helpers ---------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    """A finite float, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else ""
    return str(value)


def _mean(values: Sequence[Any]) -> float | None:
    nums = [v for v in (_num(x) for x in values) if v is not None]
    return float(np.mean(nums)) if nums else None


def _clean_json(value: Any) -> Any:
    """NaN/inf -> None, numpy -> Python, so summary.json is strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean_json(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _num(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def protocols(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Protocol names in first-seen order."""
    return list(dict.fromkeys(p["protocol"] for r in records for p in r.get("protocols", [])))


# --- metrics.csv -------------------------------------------------------------------------------------
def metric_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per design and protocol (see the module docstring)."""
    rows = []
    for r in records:
        common = {"design": r["design"], "length": r["length"], "source": r.get("source", ""),
                  "pseudo_perplexity": r.get("pseudo_perplexity")}
        common.update({k: r.get("structure", {}).get(k) for k in STRUCTURE_COLUMNS})
        nov = r.get("novelty") or {}
        common.update(novelty_max_tm=nov.get("max_tm"), nearest_reference=nov.get("nearest"))
        errors = dict(r.get("errors", {}))
        for p in r.get("protocols", []):
            row = dict(common)
            row.update({k: p.get(k) for k in ("oracle", "protocol", "inverse_folding_oracle", "n_sequences", "sc_rmsd_bb",
                                              "sc_rmsd_ca", "sc_tm", "plddt", "designable", "sequence", "if_score")})
            row["error"] = errors.pop(p["protocol"], "")
            rows.append(row)
        for protocol, message in errors.items():  # a protocol that failed for this design
            rows.append({**common, "protocol": protocol, "sequence": r.get("sequence", ""), "error": message})
        if not r.get("protocols") and not r.get("errors"):
            rows.append({**common, "protocol": STRUCTURE_ONLY, "sequence": r.get("sequence", ""), "error": ""})
    return rows


def metrics_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in METRIC_COLUMNS])
    return buffer.getvalue()


# --- summary.json ---------------------------------------------------------------------------------------
def summarize(records: Sequence[Mapping[str, Any]], chains: Mapping[str, ProteinChain], *,
              meta: Mapping[str, Any] | None = None, diversity_method: str = "auto") -> dict[str, Any]:
    """The run-level summary (see the module docstring). ``chains``: design name -> its structure."""
    from multiflow.evaluation.diversity import DIVERSITY_TM, diversity

    meta = dict(meta or {})
    designability, div = {}, {}
    for protocol in protocols(records):
        best = [(r["design"], p) for r in records for p in r.get("protocols", []) if p["protocol"] == protocol]
        ok = [name for name, p in best if p.get("designable")]
        designability[protocol] = {
            "evaluated": len(best), "designable": len(ok), "fraction": len(ok) / len(best) if best else None,
            "mean_sc_rmsd_bb": _mean([p.get("sc_rmsd_bb") for _, p in best]),
            "median_sc_rmsd_bb": float(np.median([p["sc_rmsd_bb"] for _, p in best if _num(p.get("sc_rmsd_bb")) is not None]))
            if any(_num(p.get("sc_rmsd_bb")) is not None for _, p in best) else None,
            "mean_sc_tm": _mean([p.get("sc_tm") for _, p in best]), "mean_plddt": _mean([p.get("plddt") for _, p in best]),
            "threshold_angstrom": DESIGNABLE_RMSD,
        }
        if not ok:
            div[protocol] = {"designable": 0, "clusters": 0, "fraction": None,
                             "note": "no designable designs, so no diversity"}
        else:
            clustering = diversity([chains[n] for n in ok], threshold=DIVERSITY_TM, method=diversity_method)
            div[protocol] = {"designable": len(ok), "clusters": clustering.n_clusters, "fraction": clustering.fraction,
                             "method": clustering.method, "tm_threshold": DIVERSITY_TM}
    novelties = [r["novelty"]["max_tm"] for r in records if r.get("novelty")]
    novelty = ({"mean_max_tm": _mean(novelties), "designs": len(novelties), "reference": meta.get("reference"),
                "n_references": meta.get("n_references")} if novelties
               else {"note": "no reference set given (--reference DIR)" if not meta.get("reference")
                     else "no design could be compared with the reference set"})
    ss = {k: _mean([r.get("structure", {}).get(k) for r in records]) for k in ("helix_frac", "strand_frac", "coil_frac")}
    structure = {k: _mean([r.get("structure", {}).get(k) for r in records])
                 for k in ("radius_of_gyration", "clashes_per_100", "ca_ca_mean", "ca_ca_deviation")}
    ppl = [r.get("pseudo_perplexity") for r in records if r.get("pseudo_perplexity") is not None]
    summary = {
        "num_inputs": len(records) + len(meta.get("skipped", [])), "num_evaluated": len(records),
        "skipped": meta.get("skipped", []), "designability": designability, "diversity": div, "novelty": novelty,
        "secondary_structure_mean": ss, "structure_mean": structure,
        "pseudo_perplexity_mean": _mean(ppl) if ppl else None,
        "oracles": meta.get("oracles", {}), "settings": meta.get("settings", {}), "input": meta.get("input"),
        "resumed_designs": meta.get("resumed_designs", 0), "seconds": meta.get("seconds"),
        "versions": versions(), "definitions": DEFINITIONS,
    }
    if not ppl:
        summary["pseudo_perplexity_note"] = "not computed (give --esm2-path to a local ESM2 checkpoint)"
    return _clean_json(summary)


def versions() -> dict[str, str]:
    from multiflow import __version__

    out = {"multiflow": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for dist in ("torch", "biotite", "matplotlib"):  # read from package metadata: nothing is imported
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


# --- report.png -------------------------------------------------------------------------------------------
def plot_report(records: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], path: str | Path) -> Path:
    """Four panels: scRMSD vs length, pLDDT histogram, SS composition, TM-score to reference."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    ax = axes[0, 0]
    for k, protocol in enumerate(protocols(records)):
        pts = [(r["length"], p["sc_rmsd_bb"]) for r in records for p in r.get("protocols", [])
               if p["protocol"] == protocol and _num(p.get("sc_rmsd_bb")) is not None]
        if pts:
            x, y = zip(*pts)
            ax.scatter(x, y, s=18, alpha=0.8, label=protocol, marker="os^D"[k % 4])
    ax.axhline(DESIGNABLE_RMSD, color="grey", ls="--", lw=1, label=f"designable < {DESIGNABLE_RMSD:g} Å")
    ax.set(xlabel="length (residues)", ylabel="scRMSD, backbone (Å)", title="Self-consistency vs length")
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    plddt = [p["plddt"] for r in records for p in r.get("protocols", []) if _num(p.get("plddt")) is not None]
    if plddt:
        ax.hist(plddt, bins=min(20, max(5, len(plddt))), range=(0, 100), color="tab:blue")
        ax.set(xlabel="mean pLDDT", ylabel="predictions (best per design and protocol)", title="pLDDT")
    else:
        folding = summary.get("oracles", {}).get("folding", {})
        import textwrap

        note = textwrap.fill(f"no pLDDT from {folding.get('label', 'the folding oracle')}: {folding.get('plddt', '')}", 48)
        ax.text(0.5, 0.5, note, ha="center", va="center", fontsize=9, transform=ax.transAxes)
        ax.set(title="pLDDT", xticks=[], yticks=[])

    ax = axes[1, 0]
    shown = sorted(records, key=lambda r: (r["length"], r["design"]))[:60]
    fr = np.array([[_num(r.get("structure", {}).get(k)) or 0.0 for k in ("helix_frac", "strand_frac", "coil_frac")]
                   for r in shown]).reshape(-1, 3)
    x = np.arange(len(shown))
    bottom = np.zeros(len(shown))
    for j, (label, color) in enumerate(zip(("helix", "strand", "coil"), ("tab:red", "tab:olive", "tab:grey"))):
        ax.bar(x, fr[:, j], bottom=bottom, color=color, label=label, width=0.85)
        bottom += fr[:, j]
    ax.set(ylabel="fraction of residues", ylim=(0, 1.05),
           title="Secondary structure (P-SEA)" + (f", first 60 of {len(records)} by length" if len(records) > 60 else ""))
    ax.set_xticks(x, [r["design"][:14] for r in shown], rotation=90, fontsize=6)
    ax.legend(fontsize=8, loc="upper right")

    ax = axes[1, 1]
    tms = [r["novelty"]["max_tm"] for r in records if r.get("novelty")]
    if tms:
        ax.hist(tms, bins=min(20, max(5, len(tms))), range=(0, 1), color="tab:purple")
        ax.set(xlabel="max TM-score to the reference set", ylabel="designs", title="Novelty (lower = more novel)")
    else:
        ax.text(0.5, 0.5, "no reference set (--reference DIR)", ha="center", va="center", transform=ax.transAxes)
        ax.set(title="TM-score to reference", xticks=[], yticks=[])
    fig.suptitle(f"multiflow evaluation: {len(records)} designs", fontsize=12)
    fig.tight_layout()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# --- everything -----------------------------------------------------------------------------------------
def write_report(out: str | Path, records: Sequence[Mapping[str, Any]], chains: Mapping[str, ProteinChain], *,
                 meta: Mapping[str, Any] | None = None, plot: bool = True) -> dict[str, Any]:
    """Write metrics.csv, summary.json and report.png into ``out``; return the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = sorted(records, key=lambda r: r["design"])
    _atomic_write(out / "metrics.csv", metrics_csv(metric_rows(records)))
    summary = summarize(records, chains, meta=meta)
    if plot:
        plot_report(records, summary, out / "report.png")
        summary["files"] = {"metrics": "metrics.csv", "plots": "report.png"}
    _atomic_write(out / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return summary


def summary_table(summary: Mapping[str, Any]) -> str:
    """A few lines for the terminal."""
    lines = [f"evaluated {summary['num_evaluated']} of {summary['num_inputs']} inputs"
             + (f" ({len(summary['skipped'])} skipped)" if summary.get("skipped") else "")]
    for protocol, d in summary.get("designability", {}).items():
        frac = "n/a" if d["fraction"] is None else f"{100 * d['fraction']:.1f}%"
        rmsd = "n/a" if d["mean_sc_rmsd_bb"] is None else f"{d['mean_sc_rmsd_bb']:.2f} Å"
        div = summary.get("diversity", {}).get(protocol, {})
        clusters = div.get("note") or f"{div.get('clusters')} clusters at TM 0.5"
        lines.append(f"  {protocol:<18} designable {d['designable']}/{d['evaluated']} ({frac}), mean scRMSD {rmsd}; {clusters}")
    nov = summary.get("novelty", {})
    lines.append(f"  novelty: mean max TM {nov['mean_max_tm']:.3f}" if nov.get("mean_max_tm") is not None
                 else f"  novelty: {nov.get('note', 'n/a')}")
    return "\n".join(lines)
