"""Shared fixtures for evaluation tests: real ts50 chains and hand-made geometry."""

from __future__ import annotations

import pytest

from multiflow.data.chain import ProteinChain


@pytest.fixture(scope="session")
def ts50_dir(shared_data):
    path = shared_data / "structures" / "ts50"
    if not path.is_dir():
        pytest.skip(f"ts50 structures not found at {path}")
    return path


@pytest.fixture(scope="session")
def ts50_chains(ts50_dir) -> list[ProteinChain]:
    """Five ts50 chains, shortest (3A4R_A, 79 residues) first."""
    names = ["3A4R_A", "2CVI_A", "2XCJ_A", "1AHS_A", "1ETE_A"]
    return [ProteinChain.from_file(ts50_dir / f"{n}.pdb.gz") for n in names]
