"""The ``actas`` command line end to end: help, demo, verify, proofs, tally, log rebuild, exit codes.

Commands run in this process through ``actas.cli.main.main`` (the console-script entry point, which maps
errors to exit codes), with sys.argv set and output captured; one test runs the installed script itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from actas.cli.main import EXIT_ERROR, EXIT_FAILED, EXIT_USAGE, cli
from actas.core.tiles import tile_path, tiles_for_size
from actas.core.verify import STEPS
from actas.demo import DemoResult, run_demo
from actas.publish.results import compute_results
from actas.storage.layout import DataDir
from tests.conftest import Cli, CliResult

Result = CliResult
Run = Cli


@pytest.fixture
def actas(cli: Cli) -> Run:
    """Run ``actas ARGS…`` through the real entry point; verification states go to a temporary cache."""
    return cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """A small demo (data directory and verified bundle), shared read-only by the module."""
    result = run_demo(tmp_path_factory.mktemp("demo"), 30, 2024, 0, lambda label, done, total: None)
    assert result.report.ok
    return result


@pytest.fixture
def demo_copy(demo: DemoResult, tmp_path: Path) -> DemoResult:
    """A private copy of the demo's data directory and bundle, for tests that change files."""
    data, bundle = tmp_path / "data", tmp_path / "bundle"
    shutil.copytree(demo.data.root, data)
    shutil.copytree(demo.bundle, bundle)
    return DemoResult(DataDir(data), bundle, demo.election, demo.authority, demo.report, demo.timings)


def walk(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command and subcommand under a group, with the words that invoke it."""
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from walk(command, (*path, name))


COMMANDS = [((), cli), *walk(cli)]


@pytest.mark.parametrize(("words", "command"), COMMANDS, ids=[" ".join(w) or "actas" for w, _ in COMMANDS])
def test_help_for_every_command(words: tuple[str, ...], command: click.Command) -> None:
    assert command.help, f"{words} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{words}: option {param.opts} has no help text"
    result = CliRunner().invoke(cli, [*words, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    first_line = command.help.strip().splitlines()[0]
    assert " ".join(first_line.split()) in " ".join(result.output.split())


def test_every_command_is_reachable() -> None:
    names = {" ".join(words) for words, _ in COMMANDS if words}
    expected = {
        "demo",
        "verify",
        "tally",
        "proof",
        "verify-proof",
        "publish",
        "simulate",
        "log",
        "log rebuild",
        "log append",
        "render",
        "scan",
        "observe",
        "crosscheck",
    }
    assert expected <= names


def test_help_through_the_entry_point(actas: Run) -> None:
    result = actas("--help")
    assert result.code == 0
    assert "verify-proof" in result.out


def test_usage_error_exits_2(actas: Run) -> None:
    result = actas("verify")
    assert result.code == EXIT_USAGE
    assert "Missing argument" in result.err


def test_demo_prints_verified_and_a_verify_command(actas: Run, tmp_path: Path) -> None:
    result = actas("demo", "--mesas", "30", "--out", tmp_path / "out", "-j", "0")
    assert result.code == 0, result.err
    assert "VERIFIED" in result.out
    assert "VERIFICATION FAILED" not in result.out
    match = re.search(r"^\s*\S*actas verify (\S+) --key (\S+)$", result.out, re.MULTILINE)
    assert match is not None, result.out
    bundle, key = match.groups()
    assert Path(bundle) == tmp_path / "out" / "bundle"
    assert key == (Path(bundle) / "keys/authority.vkey").read_text(encoding="utf-8").strip()
    # The printed command works as printed (plus a JSON report on stdout and in-process checking).
    checked = actas("verify", bundle, "--key", key, "--json", "-", "-j", "0")
    assert checked.code == 0, checked.err
    value = json.loads(checked.out)
    assert value["ok"] is True
    assert [s["number"] for s in value["steps"]] == list(range(1, 10))
    assert len(value["steps"]) == len(STEPS) == 9
    assert all(s["ok"] is True and s["failures"] == 0 for s in value["steps"])
    assert value["checkpoint"]["size"] == 1 + 2 * 30
    assert value["failures"] == []


def test_verify_with_key_file_and_default_key(actas: Run, demo: DemoResult) -> None:
    by_file = actas("verify", demo.bundle, "--key", demo.data.authority_vkey, "-j", "0")
    assert by_file.code == 0, by_file.err
    assert "VERIFIED" in by_file.out
    unpinned = actas("verify", demo.bundle, "-j", "0")
    assert unpinned.code == 2
    assert "pass --key" in unpinned.err
    self_trusting = actas("verify", demo.bundle, "--trust-bundle-key", "-j", "0")
    assert self_trusting.code == 0
    assert "consistent with itself" in " ".join(self_trusting.err.split())


def test_verify_tampered_results_exits_1_naming_the_file(actas: Run, demo_copy: DemoResult) -> None:
    relative = f"results/{demo_copy.election.contests[0].id}/national.json"
    target = demo_copy.bundle / relative
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    key = str(demo_copy.authority)
    result = actas("verify", demo_copy.bundle, "--key", key, "-j", "0")
    assert result.code == EXIT_FAILED
    assert "VERIFICATION FAILED" in result.out
    assert f"step 9 {relative}:" in result.out
    as_json = actas("verify", demo_copy.bundle, "--key", key, "--json", "-", "-j", "0")
    assert as_json.code == EXIT_FAILED
    value = json.loads(as_json.out)
    assert value["ok"] is False
    assert [(f["step"], f["where"]) for f in value["failures"]] == [(9, relative)]


def test_verify_malformed_key_exits_3(actas: Run, demo: DemoResult) -> None:
    result = actas("verify", demo.bundle, "--key", "not-a-key+zz+!!", "-j", "0")
    assert result.code == EXIT_ERROR
    assert "(bad-key)" in result.err


def test_verify_missing_bundle_exits_3(actas: Run, tmp_path: Path) -> None:
    result = actas("verify", tmp_path / "nowhere", "--key", "k+00000000+AAAA", "-j", "0")
    assert result.code == EXIT_ERROR
    assert "(fetch)" in result.err


def test_installed_script_maps_errors_to_exit_codes(demo: DemoResult) -> None:
    script = Path(sys.executable).parent / "actas"
    assert script.exists(), "the actas console script is not installed in this environment"
    done = subprocess.run(
        [str(script), "verify", str(demo.bundle), "--key", "not-a-key+zz+!!", "-j", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_ERROR
    assert "(bad-key)" in done.stderr


def test_proof_then_verify_proof(actas: Run, demo: DemoResult, tmp_path: Path) -> None:
    mesa = demo.election.mesa_id(7)
    entry = tmp_path / "e.bin"
    made = actas("proof", demo.data.root, "--mesa", mesa, "--entry-out", entry)
    assert made.code == 0, made.err
    assert made.out.startswith("c2sp.org/tlog-proof@v1\n")
    assert json.loads(entry.read_bytes())["mesa"] == mesa
    proof = tmp_path / "p.txt"
    proof.write_text(made.out, encoding="utf-8")
    key = str(demo.authority)
    checked = actas("verify-proof", proof, "--entry", entry, "--key", key)
    assert checked.code == 0, checked.err
    assert re.search(rf"ok: entry \d+ is in {re.escape(demo.election.origin)} at tree size 61", checked.out)
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x01
    entry.write_bytes(bytes(data))
    tampered = actas("verify-proof", proof, "--entry", entry, "--key", key)
    assert tampered.code != 0
    assert "(bad-proof)" in tampered.err


def test_proof_for_unknown_mesa_exits_3(actas: Run, demo: DemoResult) -> None:
    result = actas("proof", demo.data.root, "--mesa", "no-such-mesa")
    assert result.code == EXIT_ERROR
    assert "no-such-mesa" in result.err


def test_tally_prints_the_national_totals(actas: Run, demo: DemoResult) -> None:
    result = actas("tally", demo.data.root)
    assert result.code == 0, result.err
    files = compute_results(demo.data).files
    contest = demo.election.contests[0].id
    national = json.loads(files[f"results/{contest}/national.json"])
    [area] = national["areas"]
    assert sum(area["votes"]) > 0
    for figure in (*area["votes"], area["null"], area["blank"]):
        assert re.search(rf"(?<![\d,]){re.escape(f'{figure:,}')}(?![\d,])", result.out), (figure, result.out)
    for option in national["options"]:
        assert option in result.out
    assert f"checkpoint size {1 + 2 * 30}" in result.out


def test_tally_json_equals_published_results(actas: Run, demo: DemoResult) -> None:
    result = actas("tally", demo.data.root, "--json")
    assert result.code == 0
    published = {
        str(p.relative_to(demo.bundle)): json.loads(p.read_bytes()) for p in (demo.bundle / "results").rglob("*.json")
    }
    assert json.loads(result.out) == published


@pytest.mark.parametrize("also_checkpoint", [False, True], ids=["tiles", "tiles+checkpoint"])
def test_log_rebuild_restores_identical_tiles(actas: Run, demo_copy: DemoResult, also_checkpoint: bool) -> None:
    log = demo_copy.data.log
    # What the checkpoint commits to (the writer may also have left narrower partial tiles of earlier sizes).
    committed = ["checkpoint", *(tile_path(c) for c in tiles_for_size(1 + 2 * 30))]
    before = {name: (log / name).read_bytes() for name in committed}
    shutil.rmtree(log / "tile")
    if also_checkpoint:
        (log / "checkpoint").unlink()
    result = actas("log", "rebuild", demo_copy.data.root)
    assert result.code == 0, result.err
    assert f"rebuilt tiles and checkpoint for {1 + 2 * 30} entries" in result.out
    after = {str(p.relative_to(log)): p.read_bytes() for p in log.rglob("*") if p.is_file()}
    assert after == before
    assert any(name.startswith("tile/entries/") for name in after)
