"""The steal share the benchmarks print next to each row."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from machine_state import CpuWatch, cpu_jiffies, steal_share  # noqa: E402


def test_steal_share_is_the_stolen_fraction_of_all_ticks():
    # user nice system idle iowait irq softirq steal guest guest_nice
    before = [100, 0, 50, 800, 0, 0, 0, 50, 30, 0]
    after = [160, 0, 70, 880, 0, 0, 0, 90, 60, 0]  # +60 +20 +80 idle +40 steal = 200 ticks
    assert steal_share(before, after) == 40 / 200  # guest ticks are inside user already
    assert steal_share(before, before) is None  # no time passed
    assert steal_share(None, after) is None


def test_cpu_watch_reports_something_sensible_here():
    with CpuWatch() as watch:
        sum(range(200_000))
    assert watch.steal is None or 0.0 <= watch.steal <= 1.0
    assert watch.summary().startswith("load ")
    if Path("/proc/stat").exists():
        assert cpu_jiffies() is not None
