"""Plain records shared by the pipeline's parent process and its workers (no heavy imports)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

METADATA_COLUMNS: tuple[str, ...] = (
    "example_id", "pdb_id", "chain_id", "length", "helix_frac", "strand_frac", "coil_frac",
    "missing_frac", "radius_of_gyration", "source_path", "content_hash", "example_path", "split",
)


@dataclass(frozen=True)
class ProcessOptions:
    """Options that change what a source produces (a rerun must use the same ones)."""

    min_length: int = 1  # residues
    max_length: int | None = None  # residues; None: no limit
    max_coil_fraction: float = 1.0  # 0..1
    max_missing_fraction: float = 1.0  # 0..1
    chains: tuple[str, ...] | None = None  # chain ids to take from every file; None: all protein chains
    model: int = 1  # 1-based model number

    def as_dict(self) -> dict:
        out = asdict(self)
        out["chains"] = list(self.chains) if self.chains is not None else None
        return out


@dataclass
class SourceResult:
    """What one source produced. ``rows`` are metadata rows (split left empty)."""

    source: str
    stem: str
    content_hash: str = ""
    size: int = -1
    mtime_ns: int = -1
    rows: list[dict] = field(default_factory=list)
    issues: list[tuple[str, str, str]] = field(default_factory=list)  # (chain_id, kind, reason)
    seconds: float = 0.0

    def fail(self, reason: str, chain_id: str = "") -> None:
        self.issues.append((chain_id, "failed", reason))

    def skip(self, reason: str, chain_id: str = "") -> None:
        self.issues.append((chain_id, "filtered", reason))

    @property
    def failed(self) -> bool:
        return any(kind == "failed" for _, kind, _ in self.issues)
