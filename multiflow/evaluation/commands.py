"""``multiflow evaluate``: score a folder of designs (self-consistency, structure, diversity, novelty).

    multiflow evaluate runs/codesign                      # a run folder written by `multiflow sample`
    multiflow evaluate my_pdbs/ --folding_oracle esmfold --esmfold-dir ~/weights/esmfold_v1
    multiflow evaluate runs/codesign --inverse_folding_oracle multiflow-if --num_sequences 8 --reference ref_pdbs/

Input: a multiflow run folder or any folder of PDB/mmCIF files; every protein chain is one design
(see :mod:`multiflow.evaluation.inputs`).

Per design: Co-design-1 (its own sequence folded once; skipped when the sequence is unknown,
i.e. has ``X`` or is a single repeated letter such as an all-glycine backbone), Inverse-fold-N
with the chosen inverse-folding oracle (best scRMSD of N), structure metrics (SS fractions, Rg,
CA clashes, CA–CA distances), optional ESM2 pseudo-perplexity and novelty against ``--reference``
(exact by default; ``--novelty_max_references`` and ``--novelty_top_k`` trade exactness for speed
on big reference sets, see :func:`multiflow.evaluation.diversity.novelty`).

Outputs in ``--out`` (default ``<input>/evaluation``): ``metrics.csv``, ``summary.json``,
``report.png`` (see :mod:`multiflow.evaluation.report`), plus ``fold_cache/`` (every prediction,
by oracle settings and sequence) and ``designs/<name>.json`` (each finished design with the
settings it was scored with; see :mod:`multiflow.evaluation.records`). A rerun with the same
settings loads finished designs and folds nothing again, so an interrupted evaluation resumes
where it stopped.

Exit codes: 0 success; 1 no design could be evaluated; 2 bad arguments, a missing or empty input
folder, or missing weights; 130 interrupted. An unreadable file or a failing design is reported
and skipped, never fatal.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from multiflow.errors import ConfigError, MissingWeightsError, run_command
from multiflow.evaluation.inputs import (  # noqa: F401  (InputError, STRUCTURE_SUFFIXES re-exported)
    STRUCTURE_SUFFIXES, Entry, InputError, collect_inputs, has_real_sequence, read_references,
)
from multiflow.evaluation.records import RECORD_FORMAT, load_record, save_record, settings_hash  # noqa: F401

FOLDING_CHOICES = ("multiflow-fold", "esmfold")
INVERSE_CHOICES = ("proteinmpnn", "proteinmpnn-soluble", "proteinmpnn-ca", "multiflow-if", "none")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="multiflow evaluate",
        description="Score designs: Co-design-1 and Inverse-fold-N self-consistency (scRMSD, scTM, pLDDT), "
                    "secondary structure, Rg, clashes, diversity, novelty. Writes metrics.csv, summary.json, "
                    "report.png; resumable.",
    )
    p.add_argument("input", type=Path, help="a multiflow run folder (designs.csv) or a folder of PDB/mmCIF files")
    p.add_argument("--folding_oracle", "--folding-oracle", choices=FOLDING_CHOICES, default="multiflow-fold",
                   help="sequence -> structure oracle (default: multiflow-fold, this project's model; it has no "
                        "pLDDT unless the checkpoint has a confidence head)")
    p.add_argument("--esmfold-dir", "--esmfold_dir", dest="esmfold_dir", type=Path, default=None,
                   help="ESMFold weights (Hugging Face folder or fair-esm .pt; default $MULTIFLOW_WEIGHTS/esmfold_v1)")
    p.add_argument("--inverse_folding_oracle", "--inverse-folding-oracle", choices=INVERSE_CHOICES,
                   default="proteinmpnn", help="backbone -> sequence oracle for Inverse-fold-N, or none (default: proteinmpnn)")
    p.add_argument("--num_sequences", "--num-sequences", type=int, default=8,
                   help="N of Inverse-fold-N: sequences designed per backbone, best scRMSD counts (default: 8)")
    p.add_argument("--temperature", "--sampling_temp", type=float, default=0.1,
                   help="inverse-folding sampling temperature (default: 0.1)")
    p.add_argument("--reference", type=Path, default=None,
                   help="folder of PDB/mmCIF reference structures (e.g. the training set) for novelty; default: none")
    p.add_argument("--novelty_max_references", "--novelty-max-references", type=int, default=None, metavar="N",
                   help="novelty against at most N reference chains, a random subset drawn with --seed (the same "
                        "for every design); faster on big reference sets, a lower bound of the exact max TM "
                        "(default: all references, exact)")
    p.add_argument("--novelty_top_k", "--novelty-top-k", type=int, default=None, metavar="K",
                   help="TM-align each design only with the K references closest in a cheap shape descriptor "
                        "(histogram of CA-CA distances); faster, may miss the nearest reference "
                        "(default: align with every reference, exact)")
    p.add_argument("--esm2-path", "--esm2_path", dest="esm2_path", type=Path, default=None,
                   help="local fair-esm ESM2 checkpoint for pseudo-perplexity (optional; skipped without it)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint for multiflow-fold / multiflow-if (default: the bundled model)")
    p.add_argument("--num_steps", "--num-steps", dest="num_steps", type=int, default=None,
                   help="sampler steps of multiflow-fold / multiflow-if (default: configs/sampling/default.yaml)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="seed for inverse folding, multiflow-fold and the --novelty_max_references subset (default: 0)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <input>/evaluation)")
    p.add_argument("--workers", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice); designs are scored one after another")
    p.add_argument("--no_plot", "--no-plot", dest="no_plot", action="store_true", help="skip report.png")
    return p


# --- oracles (built on first use, so a finished rerun loads no model) ------------------------------------------
def _checkpoint(args: argparse.Namespace) -> Path:
    from multiflow.api import DEFAULT_CHECKPOINT

    path = Path(args.checkpoint) if args.checkpoint is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise MissingWeightsError(f"checkpoint {path} not found; pass --checkpoint path/to/model.ckpt "
                                  f"(the bundled model belongs at {DEFAULT_CHECKPOINT})")
    return path


class Oracles:
    """The folding / inverse-folding oracles and ESM2 scorer of one evaluation, with their labels."""

    def __init__(self, args: argparse.Namespace) -> None:
        from multiflow.evaluation.own_oracles import builtin_label
        from multiflow.training.checkpoint import file_sha256

        self.args = args
        needs_own = args.folding_oracle == "multiflow-fold" or args.inverse_folding_oracle == "multiflow-if"
        self.sha256 = file_sha256(_checkpoint(args)) if needs_own else ""
        if args.folding_oracle == "multiflow-fold":
            self.fold_label = builtin_label("multiflow-fold", self.sha256)
        else:
            self.fold_label = f"esmfold ({args.esmfold_dir or '$MULTIFLOW_WEIGHTS/esmfold_v1'})"
        name = args.inverse_folding_oracle
        self.if_label = ("" if name == "none" else builtin_label(name, self.sha256) if name == "multiflow-if"
                         else f"{name} (v_48_020)")
        self._fold = self._if = self._esm2 = None

    def plddt_note(self, records: list[dict[str, Any]]) -> str:
        """How pLDDT was obtained; without a built oracle (a fully resumed run) read off the records."""
        from multiflow.evaluation.own_oracles import NO_PLDDT_NOTE

        if self.args.folding_oracle == "esmfold":
            return "ESMFold pLDDT, 0-100"
        if self._fold is not None:
            return self._fold.plddt_note
        has = any(p.get("plddt") is not None for r in records for p in r.get("protocols", []))
        return "model confidence x 100" if has else NO_PLDDT_NOTE

    @property
    def device(self) -> str | None:
        return None if self.args.device == "auto" else self.args.device

    @property
    def fold(self):
        if self._fold is None:
            from multiflow.evaluation.folding import create_folding_oracle

            if self.args.folding_oracle == "multiflow-fold":
                self._fold = create_folding_oracle("multiflow-fold", checkpoint=_checkpoint(self.args),
                                                   device=self.args.device, seed=self.args.seed,
                                                   num_steps=self.args.num_steps)
            else:
                self._fold = create_folding_oracle("esmfold", path=self.args.esmfold_dir, device=self.device)
        return self._fold

    @property
    def reports_plddt(self) -> bool:
        return bool(getattr(self.fold, "reports_plddt", True))

    @property
    def inverse(self):
        if self._if is None and self.args.inverse_folding_oracle != "none":
            from multiflow.evaluation.inverse_folding import create_inverse_folding_oracle

            name = self.args.inverse_folding_oracle
            options = (dict(checkpoint=_checkpoint(self.args), device=self.args.device, seed=self.args.seed,
                            num_steps=self.args.num_steps)
                       if name == "multiflow-if" else dict(device=self.device))
            self._if = create_inverse_folding_oracle(name, **options)
        return self._if

    @property
    def esm2(self):
        if self._esm2 is None and self.args.esm2_path is not None:
            from multiflow.evaluation.perplexity import ESM2Scorer

            self._esm2 = ESM2Scorer.from_local(self.args.esm2_path, device=self.device)
        return self._esm2

    def settings_key(self) -> dict[str, Any]:
        """Everything that changes a design's scores; a stored record is reused only when this matches."""
        a = self.args
        return {"folding_oracle": self.fold_label, "inverse_folding_oracle": self.if_label,
                "num_sequences": a.num_sequences, "temperature": a.temperature, "seed": a.seed,
                "num_steps": a.num_steps,
                "reference": None if a.reference is None else str(a.reference.resolve()),
                "esm2": None if a.esm2_path is None else str(a.esm2_path),
                **_novelty_settings(a)}


def _novelty_settings(args: argparse.Namespace) -> dict[str, int]:
    """The novelty shortcuts in use; absent when exact, so the settings of earlier runs keep their key."""
    given = {"novelty_max_references": args.novelty_max_references, "novelty_top_k": args.novelty_top_k}
    return {k: v for k, v in given.items() if v is not None}


# --- one design -------------------------------------------------------------------------------------------
def _protocol_row(d: Any, fold_label: str, if_label: str, reports_plddt: bool) -> dict[str, Any]:
    best = d.best
    i = d.rows.index(best)
    return {"protocol": d.protocol, "oracle": fold_label, "inverse_folding_oracle": if_label,
            "n_sequences": len(d.rows), "sc_rmsd_bb": best.sc_rmsd, "sc_rmsd_ca": best.sc_rmsd_ca, "sc_tm": best.sc_tm,
            "plddt": best.plddt if reports_plddt else None, "designable": bool(best.designable), "sequence": best.sequence,
            "if_score": d.designs[i].score if d.designs else None, "all_sc_rmsd_bb": [r.sc_rmsd for r in d.rows]}


def evaluate_design(entry: Entry, oracles: Oracles, cache: Any, references: list | None) -> dict[str, Any]:
    """Score one design; a failing protocol is recorded in ``errors`` and the rest still run."""
    from multiflow.evaluation.designability import codesign_designability, inverse_fold_designability
    from multiflow.evaluation.diversity import novelty
    from multiflow.evaluation.metrics import structure_metrics

    chain, args = entry.chain, oracles.args
    seq = chain.sequence
    rec: dict[str, Any] = {"design": entry.name, "source": entry.source, "length": chain.length, "sequence": seq,
                           "has_sequence": has_real_sequence(seq), "structure": {}, "protocols": [], "errors": {},
                           "pseudo_perplexity": None, "novelty": None}
    try:
        rec["structure"] = structure_metrics(chain)
    except Exception as err:  # noqa: BLE001 - one bad structure must not stop the run
        rec["errors"]["structure"] = f"{type(err).__name__}: {err}"
    if rec["has_sequence"]:
        try:
            d = codesign_designability(chain, oracles.fold, cache=cache)
            rec["protocols"].append(_protocol_row(d, oracles.fold_label, "", oracles.reports_plddt))
        except MissingWeightsError:
            raise
        except Exception as err:  # noqa: BLE001
            rec["errors"]["codesign-1"] = f"{type(err).__name__}: {err}"
    if oracles.if_label:
        protocol = f"inverse-fold-{args.num_sequences}"
        try:
            d = inverse_fold_designability(chain, oracles.inverse, oracles.fold, num_sequences=args.num_sequences,
                                           temperature=args.temperature, seed=args.seed, cache=cache)
            rec["protocols"].append(_protocol_row(d, oracles.fold_label, oracles.if_label, oracles.reports_plddt))
        except MissingWeightsError:
            raise
        except Exception as err:  # noqa: BLE001
            rec["errors"][protocol] = f"{type(err).__name__}: {err}"
    if references:
        try:
            nov = novelty([chain], references, max_references=args.novelty_max_references,
                          top_k=args.novelty_top_k, seed=args.seed)
            rec["novelty"] = {"max_tm": float(nov.max_tm[0]), "nearest": nov.nearest[0]}
        except Exception as err:  # noqa: BLE001
            rec["errors"]["novelty"] = f"{type(err).__name__}: {err}"
    if rec["has_sequence"] and oracles.esm2 is not None:
        try:
            rec["pseudo_perplexity"] = float(oracles.esm2.pseudo_perplexity([seq])[0])
        except Exception as err:  # noqa: BLE001
            rec["errors"]["pseudo_perplexity"] = f"{type(err).__name__}: {err}"
    return rec


# --- main --------------------------------------------------------------------------------------------------
def _check_args(args: argparse.Namespace) -> None:
    """Reject bad numbers before any work; set torch's thread count; check the device."""
    from multiflow.api import check_device

    if args.num_sequences < 1:
        raise ConfigError(f"--num_sequences must be >= 1, got {args.num_sequences}")
    if not args.temperature > 0:
        raise ConfigError(f"--temperature must be > 0, got {args.temperature}")
    for flag in ("novelty_max_references", "novelty_top_k"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {value}")
    if args.workers is not None:
        if args.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {args.workers}")
        import torch

        torch.set_num_threads(args.workers)
    check_device(args.device)


def _score_all(entries: list[Entry], out: Path, key: str, oracles: Oracles, cache: Any, references: list | None,
               skipped: list[dict[str, str]]) -> tuple[list[dict[str, Any]], int]:
    """Records of the designs (stored ones reused) and how many were reused; failures go to ``skipped``."""
    from tqdm import tqdm

    records, reused = [], 0
    bar = tqdm(entries, desc="evaluate", unit="design", file=sys.stderr, dynamic_ncols=True)
    for entry in bar:
        bar.set_postfix_str(entry.name[:20])
        record = load_record(out, entry, key)
        if record is not None:
            reused += 1
        else:
            try:
                record = evaluate_design(entry, oracles, cache, references)
            except MissingWeightsError:
                raise
            except Exception as err:  # noqa: BLE001 - logged and skipped, never fatal
                tqdm.write(f"skipped {entry.name}: {type(err).__name__}: {err}", file=sys.stderr)
                skipped.append({"input": entry.name, "file": entry.source, "reason": f"{type(err).__name__}: {err}"})
                continue
            save_record(out, entry, key, record)
        for protocol, message in record.get("errors", {}).items():
            tqdm.write(f"{entry.name}: {protocol} failed: {message}", file=sys.stderr)
        records.append(record)
    bar.close()
    return records, reused


def run(args: argparse.Namespace) -> int:
    import multiflow.evaluation.own_oracles  # noqa: F401 - registers multiflow-fold / multiflow-if
    from multiflow.evaluation.folding import FoldCache
    from multiflow.evaluation.report import summary_table, write_report

    _check_args(args)
    folder = Path(args.input)
    kind, entries, skipped = collect_inputs(folder)
    for s in skipped:
        print(f"skipped {s['input']}: {s['reason']}", file=sys.stderr)
    out = Path(args.out) if args.out is not None else folder / "evaluation"
    (out / "designs").mkdir(parents=True, exist_ok=True)
    oracles = Oracles(args)
    references = None
    if args.reference is not None:
        from multiflow.evaluation.tmscore import TMStructure

        references = [TMStructure.from_chain(c) for c in read_references(args.reference)]
    settings = oracles.settings_key()
    key = settings_hash(settings)
    cache = FoldCache(out / "fold_cache")
    print(f"evaluating {len(entries)} design(s) from {folder} ({kind}); folding: {oracles.fold_label}; "
          f"inverse folding: {oracles.if_label or 'none'}; output: {out}", file=sys.stderr)
    started = time.time()
    records, reused = _score_all(entries, out, key, oracles, cache, references, skipped)
    meta = {"input": {"folder": str(folder), "kind": kind}, "skipped": skipped, "settings": {**settings, "key": key},
            "reference": None if args.reference is None else str(args.reference),
            "n_references": None if references is None else len(references),
            "oracles": {"folding": {"name": args.folding_oracle, "label": oracles.fold_label, "plddt": oracles.plddt_note(records)},
                        "inverse_folding": {"name": args.inverse_folding_oracle, "label": oracles.if_label or None}},
            "resumed_designs": reused, "seconds": round(time.time() - started, 2)}
    chains = {e.name: e.chain for e in entries}
    summary = write_report(out, records, chains, meta={**meta}, plot=not args.no_plot)
    print(summary_table(summary))
    print(f"wrote {out / 'metrics.csv'}, {out / 'summary.json'}" + ("" if args.no_plot else f", {out / 'report.png'}")
          + (f" ({reused} design(s) reused from an earlier run)" if reused else ""))
    return 0 if records else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``multiflow evaluate``; returns the exit code."""
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as stop:  # --help (0) or a usage error (2)
        return int(stop.code or 0)
    return run_command(lambda: run(args), "interrupted; finished designs are kept and a rerun resumes from them")


if __name__ == "__main__":
    sys.exit(main())
