"""``multiflow sample | inverse-fold | fold | scaffold``: argparse front ends of :mod:`multiflow.api`.

    multiflow sample --lengths 70-150:10 --num_samples 4 --out_folder runs/codesign
    multiflow inverse-fold --pdb_path complex.pdb --chains_to_design A --fixed_residues "A12 A13 B42C" \\
        --batch_size 8 --number_of_batches 2 --temperature 0.1 --out_folder runs/if
    multiflow fold --fasta_path seqs.fa --out_folder runs/fold
    multiflow scaffold --pdb_path motif.pdb --contigs "5-15/A10-25/30-40" --num_designs 8 --out_folder runs/sc
    multiflow sample --lengths 100 num_steps=200 eta=1.0          # Hydra-style key=value sampler overrides

Sampler settings come from ``configs/sampling/default.yaml``; flags and ``key=value`` overrides
change them (the same key given both ways with different values is an error). Bad input exits
with code 2 and one ``error: ...`` line naming the problem; nothing is left in ``--out_folder``.
A run stopped part-way (Ctrl-C, SIGTERM, an error in a later batch) writes the designs of the
batches that finished, with ``"status": "interrupted: ..."`` in run.json, and exits 130 / 143
(or re-raises the error).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from multiflow.errors import (
    PARTIAL_RUN_STOPS, ConfigError, MultiflowError, SamplingFailed, SamplingInterrupted, Terminated, run_command,
)

NAMES = ("sample", "inverse-fold", "fold", "scaffold")
_DESCRIPTIONS = {
    "sample": "Unconditional co-design of structure and sequence (optionally around a partial sequence).",
    "inverse-fold": "Design sequences for the backbone of your PDB/mmCIF file (LigandMPNN-style flags).",
    "fold": "Predict backbones for the sequences of a FASTA file (sequence fixed, structure sampled).",
    "scaffold": "Motif scaffolding / inpainting from an RFdiffusion contig string.",
}
_FLAG_KEYS = {"num_steps": "num_steps", "temperature": "temperature", "eta": "eta", "purity": "purity",
              "max_tokens": "max_tokens"}


# --- parsers --------------------------------------------------------------------------------------
def build_parser(name: str) -> argparse.ArgumentParser:
    if name not in NAMES:
        raise ConfigError(f"unknown design command {name!r}; expected one of {', '.join(NAMES)}")
    parser = argparse.ArgumentParser(prog=f"multiflow {name}", description=_DESCRIPTIONS[name],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Sampler overrides: key=value (keys of configs/sampling/default.yaml), "
                                            "e.g. num_steps=200 trajectory_stride=5.")
    task_args = {"sample": _sample_args, "inverse-fold": _inverse_args, "fold": _fold_args, "scaffold": _scaffold_args}
    task_args[name](parser)
    _common_args(parser)
    return parser


def _common_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and sampler")
    g.add_argument("--checkpoint", type=Path, default=None,
                   help="model weights (default: the bundled multiflow/assets/models/cpu_small.pt)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: auto = CUDA if available)")
    g.add_argument("--num_steps", type=int, default=None, help="Euler steps (default: config num_steps)")
    g.add_argument("--temperature", "--sampling_temp", dest="temperature", type=float, default=None,
                   help="amino-acid sampling temperature (default: config temperature)")
    g.add_argument("--eta", type=float, default=None, help="CTMC stochasticity >= 0 (default: config eta)")
    g.add_argument("--purity", action=argparse.BooleanOptionalAction, default=None,
                   help="confidence-ordered unmasking (default: config purity)")
    g.add_argument("--max_tokens", type=int, default=None, help="batch budget in residues (default: config)")
    g.add_argument("--seed", type=int, default=None, help="random seed (default: a random one, recorded in run.json)")
    g.add_argument("--allow_long", action="store_true", help="allow designs longer than 2000 residues")
    o = p.add_argument_group("outputs")
    o.add_argument("--out_folder", type=Path, default=None,
                   help="run folder to create (default: designs/<command>-<date>-<time>)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    o.add_argument("--mmcif", action="store_true", help="write mmCIF instead of PDB")
    o.add_argument("--save_trajectory", action="store_true", help="also write x_t as a multi-model PDB per design")
    o.add_argument("--no_viewer", action="store_true", help="do not write viewer.html")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="sampler setting overrides")


def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lengths", default=None, help="'100', '80,100' or '70-150:10' (start-stop:step, inclusive)")
    p.add_argument("--num_samples", type=int, default=1, help="designs per length (default: 1)")
    p.add_argument("--partial_sequence", default=None,
                   help="known residues, '_' to design, e.g. 'MK__EL___' (chains separated by '/')")


def _inverse_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pdb_path", type=Path, default=None, help="input PDB or mmCIF file (.gz allowed)")
    p.add_argument("--pdb_path_multi", type=Path, default=None,
                   help="many structures: a JSON object/list of paths (LigandMPNN style) or a text file, one "
                        "per line; each target gets its own run folder inside --out_folder, plus targets.csv")
    p.add_argument("--fixed_residues_multi", type=Path, default=None,
                   help='with --pdb_path_multi: JSON {"<path or name>": "A12 A13"} (others use --fixed_residues)')
    p.add_argument("--redesigned_residues_multi", type=Path, default=None,
                   help='with --pdb_path_multi: JSON {"<path or name>": "A12 A13"} (others use --redesigned_residues)')
    p.add_argument("--chains_to_design", default=None, help="e.g. 'A,B' (default: every chain); others stay fixed")
    p.add_argument("--fixed_residues", default=None, help="residues kept, e.g. 'A12 A13 B42C' (exact labels)")
    p.add_argument("--redesigned_residues", default=None, help="residues designed; everything else is kept")
    p.add_argument("--bias_AA", default=None, help="logit offsets, e.g. 'A:-1.0,W:0.5'")
    p.add_argument("--omit_AA", default=None, help="amino acids never sampled, e.g. 'CX'")
    p.add_argument("--bias_AA_per_residue", type=Path, default=None,
                   help='JSON {"A12": {"G": -0.3, "P": -10}}: logit offsets at designed residues (added to --bias_AA)')
    p.add_argument("--omit_AA_per_residue", type=Path, default=None,
                   help='JSON {"A12": "CP"}: amino acids never sampled at those designed residues')
    p.add_argument("--number_of_batches", type=int, default=None, help="batches of --batch_size sequences (default 1)")
    p.add_argument("--batch_size", type=int, default=1, help="sequences per forward pass (default: 1)")
    p.add_argument("--num_seq_per_target", type=int, default=None,
                   help="total sequences (ProteinMPNN alias; replaces --number_of_batches)")


def _fold_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fasta_path", type=Path, default=None,
                   help="FASTA file; chains within a record split by '/' or ':'")
    p.add_argument("--sequence", action="append", default=None, help="a sequence to fold (repeatable)")
    p.add_argument("--num_samples", type=int, default=1, help="structures per sequence (default: 1)")


def _scaffold_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pdb_path", type=Path, required=True, help="PDB/mmCIF file holding the motif")
    p.add_argument("--contigs", required=True, help="RFdiffusion contig, e.g. '5-15/A10-25/30-40' ('/0 ' = new chain)")
    p.add_argument("--num_designs", type=int, default=1, help="number of designs (default: 1)")
    p.add_argument("--length", default=None, help="total length constraint, e.g. '100' or '100-120'")
    p.add_argument("--keep_motif_sequence", action="store_true",
                   help="also keep the motif's amino acids (and side chains)")


# --- running ------------------------------------------------------------------------------------------
def run_subcommand(name: str, argv: list[str]) -> int:
    """Entry point used by ``multiflow.cli``; returns the exit code."""
    try:
        parser = build_parser(name)
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2)
        return int(stop.code or 0)
    except MultiflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run_command(lambda: _run(name, args, argv), "interrupted; no run folder was written")


def _settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags and key=value overrides merged; the same key given both ways with different values is an error."""
    from multiflow.api import SETTING_ALIASES, SamplingSettings

    flags = {key: getattr(args, flag) for flag, key in _FLAG_KEYS.items() if getattr(args, flag) is not None}
    given = SamplingSettings.from_config(args.overrides)  # checks keys and values
    keys = {o.split("=", 1)[0].strip().removeprefix("sampling.") for o in args.overrides}
    kv = {k: getattr(given, k) for k in (SETTING_ALIASES.get(k, k) for k in keys)}
    clash = [k for k in flags if k in kv and getattr(given.replace(**{k: flags[k]}), k) != kv[k]]
    if clash:
        raise ConfigError(f"{', '.join(clash)} given both as a flag and as key=value with different values; give one")
    return {**kv, **flags}


def _run(name: str, args: argparse.Namespace, argv: list[str]) -> int:
    from multiflow.api import check_device, load_model
    from multiflow.sampling.outputs import check_out_folder

    out = args.out_folder or Path("designs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_out_folder(out, args.overwrite)
    check_device(args.device)
    overrides = _settings_overrides(args)
    multi = _multi_targets(name, args)
    task_inputs = _TASK_INPUTS[name](args) if multi is None else {}  # validate cheap inputs before loading weights
    model = load_model(args.checkpoint, args.device)
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    print(f"model {model.model_label} on {model.device}; seed {seed}; run folder {out}")
    common = {"seed": seed, "allow_long": args.allow_long, "save_trajectory": args.save_trajectory, **overrides}
    save = {"mmcif": args.mmcif, "overwrite": args.overwrite, "viewer": not args.no_viewer,
            "command": ["multiflow", name, *argv]}
    if multi is not None:
        from multiflow.sampling.multi_target import run_inverse_multi

        with _sigterm_stops():
            return run_inverse_multi(multi, args, model, out, save, seed, lambda a: _call_inverse(
                model, _inverse_inputs(a), dict(common), a))
    try:
        with _Progress(name) as progress, _sigterm_stops():
            result = _CALLS[name](model, task_inputs, {**common, "on_batch": progress.update}, args)
    except PARTIAL_RUN_STOPS as stop:  # keep the batches that finished
        return _save_interrupted(model, stop, out, save)
    folder = model.save(result, out, **save)
    _print_summary(result, folder)
    if name == "fold":
        print(f"confidence: {result.report['confidence']}")
    return 0


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """While sampling, SIGTERM (a scheduler's preemption, ``kill``) stops the run as Ctrl-C does, so
    the finished batches are written instead of lost."""
    def stop(signum: int, frame: Any) -> None:
        raise Terminated("SIGTERM")

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _save_interrupted(model: Any, stop: SamplingInterrupted | SamplingFailed, out: Path,
                      save: dict[str, Any]) -> int:
    """Write the finished designs of a stopped run; exit 130 (Ctrl-C), 143 (SIGTERM) or, after an error, raise it."""
    cause = stop.__cause__
    if stop.result is not None and len(stop.result):
        folder = model.save(stop.result, out, status=f"interrupted: {stop}", **save)
        print(f"{stop}; the {len(stop.result)} finished designs are in {folder} (run.json: status interrupted)",
              file=sys.stderr)
    else:
        print(f"{stop}; no run folder was written", file=sys.stderr)
    if isinstance(cause, Terminated):
        return 143
    if isinstance(cause, KeyboardInterrupt):
        return 130
    if isinstance(cause, MultiflowError):
        print(f"error: {cause}", file=sys.stderr)
        return 2
    raise cause if cause is not None else stop


def _multi_targets(name: str, args: argparse.Namespace) -> Any:
    """``MultiTargets`` for ``inverse-fold --pdb_path_multi``, else None (after checking the flags fit)."""
    if name != "inverse-fold":
        return None
    if args.pdb_path_multi is None:
        if args.pdb_path is None:
            raise ConfigError("give --pdb_path (one structure) or --pdb_path_multi (a list of them)")
        if args.fixed_residues_multi is not None or args.redesigned_residues_multi is not None:
            raise ConfigError("--fixed_residues_multi and --redesigned_residues_multi go with --pdb_path_multi")
        return None
    from multiflow.sampling.multi_target import MultiTargets

    return MultiTargets.from_args(args)


def _inverse_inputs(args: argparse.Namespace) -> dict[str, Any]:
    from multiflow.data.io import read_structure
    from multiflow.sampling.inputs import parse_bias, read_json
    from multiflow.sampling.residues import compress_labels
    from multiflow.sampling.selection import residue_bias, select_inverse

    if args.num_seq_per_target is not None and args.number_of_batches is not None:
        raise ConfigError("give --num_seq_per_target (total) or --number_of_batches (x --batch_size), not both")
    chains = read_structure(args.pdb_path)
    long_ids = [c.chain_id for c in chains if len(c.chain_id) > 1]
    if long_ids and not args.mmcif:
        raise ConfigError(f"{args.pdb_path} has multi-character chain ids ({', '.join(long_ids[:5])}), which PDB files "
                          "cannot hold; pass --mmcif to write mmCIF")
    sel = select_inverse(chains, args.chains_to_design, args.fixed_residues, args.redesigned_residues)
    per_residue = {"bias_AA_per_residue": read_json(args.bias_AA_per_residue, "--bias_AA_per_residue"),
                   "omit_AA_per_residue": read_json(args.omit_AA_per_residue, "--omit_AA_per_residue")}
    residue_bias(chains, sel, parse_bias(args.bias_AA, args.omit_AA), *per_residue.values())  # check before loading
    r = sel.report
    print(f"designed chains: {','.join(r['designed_chains']) or '(none)'}   "
          f"context chains (fixed): {','.join(r['fixed_chains']) or '(none)'}")
    print(f"designed residues ({len(r['designed_residues'])}): {compress_labels(r['designed_residues'])}")
    print(f"fixed residues in designed chains ({len(r['fixed_residues'])}): {compress_labels(r['fixed_residues'])}")
    for note in r["notes"]:
        print(f"note: {note}")
    return {"chains": chains, **per_residue}


def _fold_inputs(args: argparse.Namespace) -> dict[str, Any]:
    from multiflow.data.io import read_fasta

    if (args.fasta_path is None) == (args.sequence is None):
        raise ConfigError("give --fasta_path or --sequence (one of them)")
    records = read_fasta(args.fasta_path) if args.fasta_path is not None else list(args.sequence)
    return {"records": records}


def _scaffold_inputs(args: argparse.Namespace) -> dict[str, Any]:
    from multiflow.data.io import read_structure
    from multiflow.sampling.contigs import parse_contigs, resolve_motifs

    chains = read_structure(args.pdb_path)
    motifs = resolve_motifs(parse_contigs(args.contigs), chains)
    for text, refs in motifs.items():
        print(f"motif {text}: {len(refs)} residues ({refs[0].label}..{refs[-1].label})")
    return {"chains": chains}


_TASK_INPUTS = {
    "sample": lambda a: {},
    "inverse-fold": _inverse_inputs,
    "fold": _fold_inputs,
    "scaffold": _scaffold_inputs,
}


def _call_sample(model: Any, inp: dict[str, Any], kw: dict[str, Any], a: argparse.Namespace) -> Any:
    if a.lengths is None and a.partial_sequence is None:
        raise ConfigError("give --lengths (e.g. 100 or 70-150:10) or --partial_sequence")
    return model.generate(a.lengths, a.num_samples, partial_sequence=a.partial_sequence, **kw)


def _call_inverse(model: Any, inp: dict[str, Any], kw: dict[str, Any], a: argparse.Namespace) -> Any:
    batches = a.number_of_batches or 1
    if a.num_seq_per_target is not None:
        batches = math.ceil(a.num_seq_per_target / max(a.batch_size, 1))
    return model.inverse_fold(inp["chains"], chains_to_design=a.chains_to_design, fixed_residues=a.fixed_residues,
                              redesigned_residues=a.redesigned_residues, bias_AA=a.bias_AA, omit_AA=a.omit_AA,
                              bias_AA_per_residue=inp["bias_AA_per_residue"],
                              omit_AA_per_residue=inp["omit_AA_per_residue"],
                              number_of_batches=batches, batch_size=a.batch_size,
                              num_sequences=a.num_seq_per_target, **kw)


def _call_fold(model: Any, inp: dict[str, Any], kw: dict[str, Any], a: argparse.Namespace) -> Any:
    return model.fold(inp["records"], a.num_samples, **kw)


def _call_scaffold(model: Any, inp: dict[str, Any], kw: dict[str, Any], a: argparse.Namespace) -> Any:
    return model.scaffold(inp["chains"], a.contigs, a.num_designs, keep_motif_sequence=a.keep_motif_sequence,
                          length=a.length, **kw)


_CALLS = {"sample": _call_sample, "inverse-fold": _call_inverse, "fold": _call_fold, "scaffold": _call_scaffold}


class _Progress:
    """A rich progress bar over batches (stderr); silent when there is one batch."""

    def __init__(self, name: str) -> None:
        self.name, self.bar, self.task = name, None, None

    def __enter__(self) -> _Progress:
        return self

    def update(self, done: int, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

        if self.bar is None:
            self.bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
            self.bar.start()
            self.task = self.bar.add_task(f"{self.name}: batches", total=total)
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_summary(result: Any, folder: Path, max_rows: int = 20) -> None:
    from rich.console import Console
    from rich.table import Table

    from multiflow.sampling.outputs import metric_columns

    keys = [k for k in metric_columns(result.designs) if k not in ("id", "batch", "designed", "contig")
            and any(d.metrics.get(k) is not None for d in result.designs)]
    table = Table(title=f"{result.task}: {len(result.designs)} design(s) in {folder}")
    for col in ("name", *keys, "sequence"):
        table.add_column(col, overflow="fold" if col == "sequence" else "ellipsis")
    if result.native is not None:
        table.add_row(f"{result.native.name} (native)", *[_cell(result.native.metrics.get(k)) for k in keys],
                      _short(result.native.sequence))
    for d in result.designs[:max_rows]:
        table.add_row(d.name, *[_cell(d.metrics.get(k)) for k in keys], _short(d.sequence))
    if len(result.designs) > max_rows:
        table.add_row(f"... {len(result.designs) - max_rows} more in designs.csv", *[""] * (len(keys) + 1))
    Console().print(table)


def _cell(v: Any) -> str:
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _short(seq: str, width: int = 60) -> str:
    return seq if len(seq) <= width else seq[: width - 3] + "..."
