"""A self-contained HTML page per run that shows every design in 3D.

The page inlines the vendored 3Dmol.js (``multiflow/assets/3Dmol-min.js``, BSD-3-Clause; see
``scripts/vendor_3dmol.sh``), so it opens offline from ``file://`` with no network at all. It holds a
sortable summary table, then one card per design: a 3D cartoon, the sequence (motif residues
highlighted) and a metrics table. A control switches the colouring between chain, N-to-C spectrum,
confidence (pLDDT bands as AlphaFold DB colours them) and motif vs scaffold.

Browsers allow ~16 WebGL contexts per page, so 3D views are created only as their cards scroll
into view, and at most ``MAX_LIVE_VIEWERS`` live at once (the view seen longest ago is released).

Residues are counted the same way here and in the page: ATOM/HETATM records of the first model,
waters excluded, a new residue whenever (chain, number, insertion code) changes in file order.
Per-residue ``confidence`` and ``motif`` follow that order, as does ``sequence`` (chains may be
joined with ``/``).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from multiflow.constants import CA_IDX
from multiflow.data.chain import ProteinChain
from multiflow.data.io import _atomic_write, pdb_string

COLOR_MODES: tuple[str, ...] = ("chain", "spectrum", "confidence", "motif")
MAX_LIVE_VIEWERS: int = 12
"""WebGL contexts the page keeps at once (Chrome and Firefox drop the oldest past ~16)."""
SEQUENCE_BLOCK: int = 10
"""Residues per block of the wrapped sequence display."""
_WATERS = frozenset({"HOH", "WAT", "DOD"})
_MARKER = re.compile(r"@@([A-Z_]+)@@")

MetricValue = float | int | str | bool | None


@dataclass(frozen=True, eq=False)
class DesignView:
    """What the page shows of one design. ``N`` = residues in the PDB text (see module doc)."""

    name: str
    pdb: str  # PDB text, e.g. ProteinChain.to_pdb_string()
    sequence: str  # [N] one-letter codes, chains optionally joined with "/"
    metrics: Mapping[str, MetricValue] = field(default_factory=dict)  # shown in order given
    confidence: tuple[float, ...] | None = None  # [N] pLDDT-like, 0-100; None: the B-factor column
    motif: tuple[bool, ...] | None = None  # [N] True for motif residues, False for scaffold

    def __post_init__(self) -> None:
        where = f"DesignView {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"DesignView name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.pdb, str):
            raise TypeError(f"{where}: pdb must be PDB text (str), got {type(self.pdb).__name__}")
        labels = pdb_residue_labels(self.pdb)
        if not labels:
            raise ValueError(f"{where}: pdb holds no ATOM/HETATM records; expected PDB text of the design")
        n = len(labels)
        sequence = "".join(str(self.sequence).split()).upper()
        letters = sequence.replace("/", "")
        if not re.fullmatch(r"[A-Z/]+", sequence or "-") or not letters:
            raise ValueError(f"{where}: sequence must be one-letter codes (chains joined by '/'), got {self.sequence!r}")
        if len(letters) != n:
            raise ValueError(f"{where}: sequence has {len(letters)} residues but the PDB text has {n}")
        object.__setattr__(self, "sequence", sequence)
        object.__setattr__(self, "metrics", MappingProxyType(_clean_metrics(self.metrics, where)))
        if self.confidence is not None:
            conf = np.asarray(self.confidence, dtype=np.float64).reshape(-1)
            if conf.shape != (n,):
                raise ValueError(f"{where}: expected confidence of shape [{n}], got {list(np.shape(self.confidence))}")
            if not np.isfinite(conf).all() or conf.min() < 0 or conf.max() > 100:
                raise ValueError(f"{where}: confidence must be finite and within 0-100 (pLDDT scale), "
                                 f"got range {np.nanmin(conf):.3g}..{np.nanmax(conf):.3g}")
            object.__setattr__(self, "confidence", tuple(float(round(c, 2)) for c in conf))
        if self.motif is not None:
            motif = np.asarray(self.motif).reshape(-1)
            if motif.shape != (n,) or motif.dtype != bool:
                raise ValueError(f"{where}: expected motif as a boolean mask of shape [{n}], "
                                 f"got dtype {motif.dtype} shape {list(motif.shape)}")
            object.__setattr__(self, "motif", tuple(bool(m) for m in motif))

    @property
    def length(self) -> int:
        return len(self.sequence.replace("/", ""))

    @classmethod
    def from_chain(
        cls,
        chains: ProteinChain | Sequence[ProteinChain],
        *,
        name: str | None = None,
        metrics: Mapping[str, MetricValue] | None = None,
        confidence: Any = None,
        motif: Any = None,
    ) -> DesignView:
        """A view of one or more chains (residues in chain order).

        ``confidence``: [N] values 0-100, or the string ``"b_factors"`` to take each residue's CA
        B-factor (e.g. pLDDT written by a folding model). ``motif``: a [N] boolean mask or residue
        labels as users write them (``["A12", "B42C"]`` or ``"A12 B42C"``), matched exactly.
        """
        chains = [chains] if isinstance(chains, ProteinChain) else list(chains)
        if not chains:
            raise ValueError("from_chain needs at least one ProteinChain")
        labels = [lab for c in chains for lab in c.residue_labels()]
        if isinstance(confidence, str):
            if confidence != "b_factors":
                raise ValueError(f"confidence must be per-residue values or 'b_factors', got {confidence!r}")
            confidence = np.concatenate([c.b_factors[:, CA_IDX] for c in chains])
        if isinstance(motif, str):
            motif = motif.replace(",", " ").split()
        if motif is not None and not isinstance(motif, np.ndarray) and all(isinstance(m, str) for m in motif):
            wanted = [m.strip() for m in motif]
            unknown = [m for m in wanted if m not in labels]
            if unknown:
                raise ValueError(f"motif residue(s) {unknown[:10]} not found; residues run {labels[0]}..{labels[-1]}")
            motif = np.isin(np.array(labels), wanted)
        return cls(
            name=name or chains[0].name or "design",
            pdb=pdb_string(chains), sequence="/".join(c.sequence for c in chains),
            metrics=dict(metrics or {}), confidence=confidence, motif=motif,
        )


def pdb_residue_labels(pdb: str) -> list[str]:
    """Residue labels (chain + number + insertion code) of the first model, in file order, waters excluded."""
    labels: list[str] = []
    previous = None
    for line in pdb.splitlines():
        if line.startswith("ENDMDL"):
            break
        if not line.startswith(("ATOM  ", "HETATM")) or line[17:20].strip() in _WATERS:
            continue
        key = (line[21:22], line[22:26], line[26:27])
        if key != previous:
            previous = key
            labels.append(f"{key[0].strip()}{key[1].strip()}{key[2].strip()}")
    return labels


def _chain_count(pdb: str) -> int:
    first_model = pdb.split("ENDMDL", 1)[0]
    return len({line[21:22] for line in first_model.splitlines() if line.startswith(("ATOM  ", "HETATM"))})


def render_html(
    designs: Iterable[DesignView],
    path: str | Path,
    title: str = "multiflow designs",
    *,
    color_by: str = "chain",
) -> Path:
    """Write one self-contained HTML page showing every design; returns the path (atomic write)."""
    designs = list(designs)
    if not designs:
        raise ValueError("render_html needs at least one DesignView")
    bad = [type(d).__name__ for d in designs if not isinstance(d, DesignView)]
    if bad:
        raise TypeError(f"render_html expects DesignView items, got {sorted(set(bad))}")
    if color_by not in COLOR_MODES:
        raise ValueError(f"color_by must be one of {COLOR_MODES}, got {color_by!r}")
    has_motif = any(d.motif is not None for d in designs)
    if color_by == "motif" and not has_motif:
        raise ValueError("color_by='motif' but no design has a motif mask")
    modes = [m for m in COLOR_MODES if m != "motif" or has_motif]
    names = {
        "chain": "chain", "spectrum": "spectrum (N\u2192C)", "confidence": "confidence (pLDDT)", "motif": "motif / scaffold",
    }
    options = "".join(
        f'<option value="{m}"{" selected" if m == color_by else ""}>{html.escape(names[m])}</option>' for m in modes
    )
    data = {
        "colorBy": color_by,
        "maxLive": MAX_LIVE_VIEWERS,
        "maxChains": max(_chain_count(d.pdb) for d in designs),
        "designs": [{"name": d.name, "pdb": d.pdb, "confidence": d.confidence, "motif": d.motif} for d in designs],
    }
    keys = _metric_keys(designs)
    fields = {
        "TITLE": html.escape(title),
        "GENERATOR": html.escape(f"multiflow {_package_version()}"),
        "COUNT": f"{len(designs)} design{'s' if len(designs) != 1 else ''}",
        "COLOR_BY": color_by,
        "COLOR_OPTIONS": options,
        "SUMMARY": _summary_table(designs, keys),
        "CARDS": "\n".join(_card(k, d) for k, d in enumerate(designs)),
        "MAX_LIVE": str(MAX_LIVE_VIEWERS),
        "LIB_VERSION": html.escape(_library_version()),
        "DATA": json_for_script(data),
        "LIBRARY": _asset_text("3Dmol-min.js"),
    }
    return _atomic_write(path, _fill(_asset_text("viewer_template.html"), fields))


def json_for_script(value: Any) -> str:
    """JSON safe to place inside a ``<script>`` element: ``<``, ``>``, ``&`` written as ``\\u`` escapes."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --- page pieces ----------------------------------------------------------------------------------
def _summary_table(designs: list[DesignView], keys: list[str]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    rows = []
    for i, d in enumerate(designs):
        cells = "".join(_metric_cell(d.metrics.get(k)) for k in keys)
        rows.append(
            f'<tr><td data-sort="{i}">{i + 1}</td>'
            f'<td class="text"><a href="#design-{i}">{html.escape(d.name)}</a></td>'
            f'<td data-sort="{d.length}">{d.length}</td>{cells}</tr>'
        )
    return (
        '<table class="sortable" id="summary"><thead><tr><th>#</th><th class="text">design</th><th>length</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _card(k: int, d: DesignView) -> str:
    rows = "".join(
        f'<tr><th class="text">{html.escape(key)}</th>{_metric_cell(value)}</tr>' for key, value in d.metrics.items()
    )
    metrics = f'<table class="metrics">{rows}</table>' if rows else '<p class="small">no metrics</p>'
    source = "confidence: given per residue" if d.confidence is not None else "confidence: PDB B-factor column"
    motif = f", motif: {sum(d.motif)} of {d.length} residues" if d.motif is not None else ""
    return (
        f'<section class="card" id="design-{k}">'
        f'<h2><a href="#design-{k}">{k + 1}. {html.escape(d.name)}</a></h2>'
        f'<div class="viewer" id="viewer-{k}" data-index="{k}"><div class="note">3D view loads when visible</div></div>'
        f'<div class="seq" id="seq-{k}">{_sequence_html(d)}</div>'
        f'<p class="small">{d.length} residues; {source}{motif}</p>{metrics}</section>'
    )


def _sequence_html(d: DesignView) -> str:
    """Residues in blocks of ``SEQUENCE_BLOCK``, each a span titled with its PDB label; '/' between chains."""
    labels = pdb_residue_labels(d.pdb)
    parts: list[str] = []
    block: list[str] = []
    i = 0

    def flush() -> None:
        if block:
            parts.append(f'<span class="blk">{"".join(block)}</span>')
            block.clear()

    for letter in d.sequence:
        if letter == "/":
            flush()
            parts.append('<span class="brk">/</span>')
            continue
        motif = d.motif is not None and d.motif[i]
        tip = labels[i] + (f" pLDDT {d.confidence[i]:.0f}" if d.confidence is not None else "")
        block.append(f'<span class="r{" m" if motif else ""}" title="{html.escape(tip)}">{letter}</span>')
        i += 1
        if len(block) == SEQUENCE_BLOCK:
            flush()
    flush()
    return "".join(parts)


def _metric_cell(value: MetricValue) -> str:
    if value is None:
        return '<td data-sort="">\u2014</td>'
    if isinstance(value, bool):
        return f'<td data-sort="{int(value)}">{"yes" if value else "no"}</td>'
    if isinstance(value, (int, float)):
        shown = f"{value:.4g}" if isinstance(value, float) and abs(value) < 1e4 else f"{value:.0f}"
        sort = repr(float(value)) if math.isfinite(value) else ""
        return f'<td data-sort="{sort}">{html.escape(shown)}</td>'
    return f'<td class="text">{html.escape(value)}</td>'


def _metric_keys(designs: list[DesignView]) -> list[str]:
    keys: dict[str, None] = {}
    for d in designs:
        keys.update(dict.fromkeys(d.metrics))
    return list(keys)


def _clean_metrics(metrics: Mapping[str, Any], where: str) -> dict[str, MetricValue]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"{where}: metrics must be a mapping name -> value, got {type(metrics).__name__}")
    out: dict[str, MetricValue] = {}
    for key, value in metrics.items():
        if isinstance(value, np.generic):
            value = value.item()
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # 0-d torch/numpy tensors
            value = value.item()
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise TypeError(f"{where}: metric {key!r} must be a number, string, bool or None, got {type(value).__name__}")
        out[str(key)] = value
    return out


# --- assets ---------------------------------------------------------------------------------------
def _fill(template: str, fields: Mapping[str, str]) -> str:
    """Replace every ``@@NAME@@`` marker in one pass (inserted text is never scanned again)."""
    missing = sorted(set(_MARKER.findall(template)) - set(fields))
    if missing:
        raise KeyError(f"viewer template markers without a value: {missing}")
    return _MARKER.sub(lambda m: fields[m.group(1)], template)


@lru_cache(maxsize=None)
def _asset_text(name: str) -> str:
    path = resources.files("multiflow") / "assets" / name
    if not path.is_file():
        raise FileNotFoundError(2, f"viewer asset {name} is missing; run `bash scripts/vendor_3dmol.sh`", str(path))
    text = path.read_text(encoding="utf-8")
    if name.endswith(".js") and re.search(r"</script", text, re.IGNORECASE):
        raise ValueError(f"{name} contains '</script' and cannot be inlined into a <script> element")
    return text


def _library_version() -> str:
    try:
        info = _asset_text("3Dmol-VERSION.txt")
    except FileNotFoundError:
        return "(version unknown)"
    found = re.search(r"^version:\s*(\S+)", info, re.MULTILINE)
    return found.group(1) if found else "(version unknown)"


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("multiflow")
    except PackageNotFoundError:
        return "(not installed)"
