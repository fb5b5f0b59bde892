"""metrics.csv / summary.json / report.png from hand-made evaluation records."""

from __future__ import annotations

import csv
import json

import numpy as np

from multiflow.evaluation.report import METRIC_COLUMNS, STRUCTURE_ONLY, metric_rows, summary_table, write_report
from tests.sampling.conftest import helix_backbone, make_chain


def _chain(n: int, shift: float = 0.0):
    return make_chain(helix_backbone(n) + np.float32(shift), "MKTAYIAKQRQLEEGHSALKWLEV"[:n], list(range(1, n + 1)),
                      [""] * n, "A")


def _protocol(name, rmsd, plddt=None):
    return {"protocol": name, "oracle": "multiflow-fold (built-in, abcdef123456)", "inverse_folding_oracle": "",
            "n_sequences": 1, "sc_rmsd_bb": rmsd, "sc_rmsd_ca": rmsd, "sc_tm": 0.5, "plddt": plddt,
            "designable": rmsd < 2.0, "sequence": "MKT", "if_score": None, "all_sc_rmsd_bb": [rmsd]}


def _records(designable: bool, with_novelty: bool = False):
    recs = []
    for i, n in enumerate((16, 20)):
        recs.append({"design": f"d{i}", "source": f"d{i}.pdb", "length": n, "sequence": "M" * n, "has_sequence": True,
                     "structure": {"helix_frac": 0.8, "strand_frac": 0.0, "coil_frac": 0.2, "radius_of_gyration": 8.0},
                     "protocols": [_protocol("codesign-1", 1.0 if designable else 5.0, plddt=70.0 if designable else None)],
                     "errors": {"inverse-fold-2": "RuntimeError: boom"} if i else {},
                     "novelty": {"max_tm": 0.4, "nearest": "ref"} if with_novelty else None})
    recs.append({"design": "bare", "source": "bare.pdb", "length": 16, "sequence": "G" * 16, "has_sequence": False,
                 "structure": {}, "protocols": [], "errors": {}})
    return recs


def test_rows_one_per_design_and_protocol():
    rows = metric_rows(_records(True))
    assert [(r["design"], r["protocol"]) for r in rows] == [("d0", "codesign-1"), ("d1", "codesign-1"),
                                                            ("d1", "inverse-fold-2"), ("bare", STRUCTURE_ONLY)]
    assert rows[2]["error"] == "RuntimeError: boom"


def test_write_report_no_designable(tmp_path):
    recs = _records(False)
    chains = {"d0": _chain(16), "d1": _chain(20, 30.0), "bare": _chain(16)}
    summary = write_report(tmp_path, recs, chains, meta={"oracles": {"folding": {"label": "x", "plddt": "none"}}})
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    d0 = next(r for r in rows if r["design"] == "d0")
    assert list(d0) == METRIC_COLUMNS and d0["plddt"] == "" and d0["designable"] == "false"
    assert d0["oracle"] == "multiflow-fold (built-in, abcdef123456)"
    loaded = json.loads((tmp_path / "summary.json").read_text())  # strict JSON (no NaN)
    assert loaded == summary
    assert loaded["designability"]["codesign-1"]["fraction"] == 0.0
    assert "no designable" in loaded["diversity"]["codesign-1"]["note"]
    assert "no reference" in loaded["novelty"]["note"]
    assert (tmp_path / "report.png").stat().st_size > 1000
    assert "designable 0/2" in summary_table(summary)


def test_write_report_designable_diversity_novelty(tmp_path):
    chains = {"d0": _chain(16), "d1": _chain(20, 30.0), "bare": _chain(16)}
    summary = write_report(tmp_path, _records(True, with_novelty=True), chains)
    assert summary["designability"]["codesign-1"]["fraction"] == 1.0
    div = summary["diversity"]["codesign-1"]
    assert div["designable"] == 2 and div["clusters"] in (1, 2)
    assert summary["novelty"]["mean_max_tm"] == 0.4
    assert summary["secondary_structure_mean"]["helix_frac"] == 0.8
    assert "multiflow" in summary["versions"]
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
