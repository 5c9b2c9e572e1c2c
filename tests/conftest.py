"""Shared fixtures: where the reference vectors live (``../shared/vectors`` beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Shared machines are noisy: a slow example is not a failure. Example counts stay at hypothesis' defaults.
settings.register_profile("actas", deadline=None)
settings.load_profile("actas")

REPO = Path(__file__).resolve().parents[1]


def vectors_root() -> Path:
    """The shared reference vectors: $ACTAS_VECTORS, else ../shared/vectors beside the repository."""
    override = os.environ.get("ACTAS_VECTORS")
    root = Path(override) if override else REPO.parent / "shared" / "vectors"
    if not root.is_dir():
        raise RuntimeError(f"reference vectors not found at {root}; set ACTAS_VECTORS")
    return root


@pytest.fixture(scope="session")
def vectors() -> Path:
    """Path of the shared reference vectors."""
    return vectors_root()
