"""``actas render`` and ``actas scan`` through the real entry point: files written, JSON lines, summary, exit codes."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from actas.cli.main import EXIT_ERROR, main
from actas.core.election import Election
from actas.core.entries import ActaEntry, parse_entry
from actas.core.qr import decode_payload
from tests.conftest import Cli, CliResult

Result = CliResult
Run = Cli


@pytest.fixture
def run(cli: Cli) -> Run:
    """Run ``actas ARGS…`` through main(), which maps errors to exit codes."""
    return cli


@dataclass(frozen=True)
class Printed:
    """Actas written by ``actas simulate --actas-to`` and rendered by ``actas render``."""

    definition: Path
    actas: Path
    pages: Path
    entries: list[bytes]


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Printed:
    """Simulate three mesas, keep their signed actas in a file, and render them as PNG pages."""
    root = tmp_path_factory.mktemp("printed")
    with pytest.MonkeyPatch.context() as patch:
        for args in (
            ["simulate", root / "data", "--mesas", "3", "--seed", "5", "--actas-to", root / "actas.txt", "-j", "1"],
            ["render", root / "actas.txt", "--election", root / "data" / "election.json", "--out", root / "pages"],
        ):
            patch.setattr(sys, "argv", ["actas", *(str(a) for a in args)])
            code: object = 0
            try:
                main()
            except SystemExit as exc:
                code = exc.code
            assert not code, args
    entries = [line for line in (root / "actas.txt").read_bytes().split(b"\n") if line]
    return Printed(root / "data" / "election.json", root / "actas.txt", root / "pages", entries)


def mesa_of(entry: bytes) -> str:
    """The mesa id of a signed acta entry."""
    parsed = parse_entry(entry).entry
    assert isinstance(parsed, ActaEntry)
    return parsed.acta.mesa


def test_render_writes_one_png_per_mesa(printed: Printed) -> None:
    """Each acta of the file becomes <mesa>.png."""
    assert len(printed.entries) == 3
    names = sorted(p.name for p in printed.pages.iterdir())
    assert names == sorted(f"{mesa_of(e)}.png" for e in printed.entries)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in printed.pages.iterdir())


def test_render_pdf_and_strip(run: Run, printed: Printed, tmp_path: Path) -> None:
    """--format pdf writes one actas.pdf; the strip layout is accepted; both report what they wrote."""
    pdf = run("render", printed.actas, "--election", printed.definition, "--out", tmp_path / "pdf", "--format", "pdf")
    assert pdf.code == 0
    assert "actas.pdf" in pdf.out
    assert (tmp_path / "pdf" / "actas.pdf").read_bytes().startswith(b"%PDF-")
    strip = run("render", printed.actas, "--election", printed.definition, "--out", tmp_path / "s", "--layout", "strip")
    assert strip.code == 0
    assert strip.out.count(".png") >= 3


def test_render_refuses_a_bad_line_naming_it(run: Run, printed: Printed, tmp_path: Path) -> None:
    """A line that is not an acta entry stops the command before anything is written, naming file and line."""
    bad = tmp_path / "bad.txt"
    bad.write_bytes(printed.entries[0] + b'\n\n{"v":1}\n')
    result = run("render", bad, "--election", printed.definition, "--out", tmp_path / "out")
    assert result.code == EXIT_ERROR
    assert f"{bad}:3" in result.err
    assert not (tmp_path / "out").exists()


def test_scan_json_lines_to_stdout(run: Run, printed: Printed) -> None:
    """--json: one parseable line per image on stdout, each read back to its signed entry; summary on stderr."""
    result = run("scan", printed.pages, "--election", printed.definition, "--json", "-j", "1")
    assert result.code == 0
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [line["status"] for line in lines] == ["ok"] * 3
    assert {decode_payload(line["payload"]) for line in lines} == set(printed.entries)
    assert all(list(line) == sorted(line) for line in lines)
    assert "images/s" in result.err
    assert "conflicting mesas: 0" in result.err


def test_scan_writes_the_out_file_and_keeps_going(run: Run, printed: Printed, tmp_path: Path) -> None:
    """Without --json the lines go to --out and the summary to stdout; an unreadable image is a line, not a failure."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    out = tmp_path / "result.jsonl"
    result = run("scan", printed.pages, broken, "--out", out, "-j", "2")
    assert result.code == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["status"] for line in lines] == ["ok", "ok", "ok", "error"]
    assert lines[3]["path"] == str(broken)
    assert lines[3]["reason"]
    assert "images/s" in result.out
    assert "wrote 4 JSON lines" in result.out


def test_scan_of_a_missing_path_is_exit_3(run: Run, tmp_path: Path) -> None:
    """A path that does not exist is a usage problem: exit 3, nothing scanned, no file written."""
    result = run("scan", tmp_path / "nowhere", "--out", tmp_path / "scan.jsonl")
    assert result.code == EXIT_ERROR
    assert "nowhere" in result.err
    assert not (tmp_path / "scan.jsonl").exists()


def test_scan_definition_must_parse(run: Run, printed: Printed, tmp_path: Path) -> None:
    """A definition that is not valid JSON is bad input: exit 3 with the error code."""
    definition = tmp_path / "election.json"
    definition.write_text("{", encoding="utf-8")
    result = run("scan", printed.pages, "--election", definition, "--json")
    assert result.code == EXIT_ERROR
    assert "invalid-definition" in result.err
    assert Election.from_json(printed.definition.read_bytes()).mesa_count == 3
