"""Fixtures for the preprocessing pipeline tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.data_pipelines.pipeline_helpers import FIXTURES, GOOD


@pytest.fixture
def good_dir(tmp_path: Path) -> Path:
    """A folder holding copies of the three good fixture files."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in GOOD:
        shutil.copy(FIXTURES / name, folder / name)
    return folder
