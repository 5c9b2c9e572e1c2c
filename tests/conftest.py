"""Shared fixtures: where the reference vectors live (``../shared/vectors`` beside the repository), and the CLI."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class CliResult:
    """Exit code and captured output of one command."""

    code: int
    out: str
    err: str


Cli = Callable[..., CliResult]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    """Run ``actas ARGS…`` through the real entry point (errors mapped to exit codes); caches in tmp_path."""
    from actas.cli.main import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["actas", *(str(a) for a in args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = 0 if exc.code is None else int(exc.code)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
