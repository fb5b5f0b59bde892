"""What the machine was doing while a benchmark row ran: load average and CPU steal.

On a virtual machine the host may give this machine's CPUs to other guests; the time lost is
"steal" (the eighth number on the ``cpu`` line of /proc/stat). Seen here: 15-50 % steal on a
machine with nothing else running, which made every wall time 2-4x longer. A wall time taken
with high steal is an upper bound; benchmarks print the steal share next to each row so a
reader can tell.

    with CpuWatch() as watch:
        run_something()
    print(watch.summary())   # "load 0.4, steal 31 %"
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC_STAT = Path("/proc/stat")
_STEAL = 7  # index of steal among user nice system idle iowait irq softirq steal guest guest_nice


def cpu_jiffies() -> list[int] | None:
    """The aggregate ``cpu`` line of /proc/stat as integers (clock ticks), or None off Linux."""
    try:
        first = _PROC_STAT.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not first or first[0] != "cpu":
        return None
    return [int(x) for x in first[1:]]


def steal_share(before: list[int] | None, after: list[int] | None) -> float | None:
    """Fraction of all CPU ticks between two readings that the host stole; None if unknown."""
    if before is None or after is None or len(before) <= _STEAL or len(after) <= _STEAL:
        return None
    # guest and guest_nice (fields 9-10) are already counted inside user and nice
    total = sum(after[:8]) - sum(before[:8])
    return (after[_STEAL] - before[_STEAL]) / total if total > 0 else None


class CpuWatch:
    """Context manager: the 1-minute load average at the start and the steal share over the block."""

    def __enter__(self) -> CpuWatch:  # noqa: PYI034 - not subclassed
        self.load = os.getloadavg()[0]
        self._before = cpu_jiffies()
        self.steal: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self.steal = steal_share(self._before, cpu_jiffies())

    def steal_text(self) -> str:
        return "n/a" if self.steal is None else f"{100 * self.steal:.0f} %"

    def summary(self) -> str:
        return f"load {self.load:.1f}, steal {self.steal_text()}"
