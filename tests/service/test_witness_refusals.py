"""What a witness refuses: a forked log (equivocation), checkpoints the log's tiles do not back, and rollbacks.

Forks are made with the authority's own key (keys/authority.key of the data directory), as a compromised or
dishonest authority would, and served by the real service on loopback or by a plain static mirror.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from actas.core.note import open_signed_checkpoint, parse_note
from actas.core.witness_check import check_witnesses
from actas.errors import EquivocationError, VerificationFailed
from actas.publish.bundle import publish_bundle
from actas.service.runtime import ServiceConfig
from actas.service.witness import run_witness, witness_once
from actas.storage.layout import DataDir
from tests.service.conftest import Election, LiveServer
from tests.service.witnesses import W1, Cli, config, forge, grow, serve_checkpoint, served, static_mirror


@pytest.fixture
def actas(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    """The actas command line, in this process."""
    return Cli(monkeypatch, capsys, tmp_path)


@pytest.fixture
def witnessed(election: Election) -> Iterator[LiveServer]:
    """The service over a fresh copy of the election, accepting cosignatures from W1."""
    live = LiveServer(ServiceConfig(data_dir=election.root, witnesses=(W1.verifier,)))
    yield live
    live.stop()


def evidence_dirs(state: Path, kind: str) -> list[Path]:
    """The evidence directories of one kind a witness wrote."""
    return sorted((state / "evidence").glob(f"{kind}-*"))


def test_equivocation_is_refused_with_evidence_and_fails_verification(
    witnessed: LiveServer, election: Election, actas: Cli, tmp_path: Path
) -> None:
    state = tmp_path / "w1"
    one = config(witnessed.url, W1, state, election.root / "keys" / "authority.key")
    size = grow(witnessed, election.actas[:12])
    assert witness_once(one).status == "cosigned"
    real = served(witnessed)  # the authority's signature and W1's cosignature
    bundle = tmp_path / "bundle"
    publish_bundle(DataDir(election.root), bundle)

    forged = forge(election.root, size, "fork")
    serve_checkpoint(witnessed, forged)
    with pytest.raises(EquivocationError, match=f"two signed checkpoints of size {size} with different roots"):
        witness_once(one)
    (evidence,) = evidence_dirs(state, "equivocation")
    assert evidence.name.startswith(f"equivocation-{size}-20250615T")
    old, new = (evidence / "old.checkpoint").read_bytes(), (evidence / "new.checkpoint").read_bytes()
    assert old == (state / "checkpoint").read_bytes()  # what W1 cosigned, with its cosignature
    assert new == forged
    assert check_witnesses(parse_note(old), [W1.verifier]).ok
    assert (
        open_signed_checkpoint(old, one.log_key).checkpoint.size
        == open_signed_checkpoint(new, one.log_key).checkpoint.size
    )
    value = json.loads((evidence / "evidence.json").read_text(encoding="utf-8"))
    assert value["kind"] == "equivocation"
    assert value["old"]["size"] == value["new"]["size"] == size
    assert value["old"]["root"] != value["new"]["root"]
    assert "two different histories" in (evidence / "README.txt").read_text(encoding="utf-8")
    assert not check_witnesses(parse_note(served(witnessed)), [W1.verifier]).ok  # never cosigned the fork

    # The loop stops on it; so does the command, with exit 1 and the evidence path.
    with pytest.raises(EquivocationError):
        run_witness(one, interval=0.05)
    args = ("witness", "--log", witnessed.url, "--log-key", election.root / "keys" / "authority.vkey")
    key = tmp_path / "w1.key"
    key.write_text(str(W1) + "\n", encoding="utf-8")
    refused = actas(*args, "--key", key, "--state", state, "--interval", "0.1")
    assert refused.code == 1
    assert "REFUSED (equivocation)" in refused.err
    assert str(state / "evidence" / "equivocation-") in refused.err
    assert len(evidence_dirs(state, "equivocation")) == 3

    # A bundle that shows the fork does not verify with W1 required, without W1's cosignature or with the
    # cosignature of the real root copied over.
    key_args = ("--key", election.root / "keys" / "authority.vkey", "-j", "0", "--witness", str(W1.verifier))
    w1_line = next(s for s in parse_note(real).signatures if s.name == W1.name)
    for checkpoint in (forged, forged + w1_line.line().encode()):
        fork = tmp_path / "fork"
        shutil.rmtree(fork, ignore_errors=True)
        shutil.copytree(bundle, fork)
        (fork / "log" / "checkpoint").write_bytes(checkpoint)
        result = actas("verify", fork, *key_args)
        assert result.code == 1
        assert "step 1 log/checkpoint: 0 of 1 required witness cosignatures" in result.out
        assert ("invalid: " if checkpoint != forged else "missing: ") + W1.name in result.out
    assert actas("verify", bundle, *key_args).code == 0  # the real one does


def test_a_checkpoint_the_tiles_do_not_back_is_refused(
    witnessed: LiveServer, election: Election, tmp_path: Path
) -> None:
    authority = election.root / "keys" / "authority.key"
    state = tmp_path / "w1"
    one = config(witnessed.url, W1, state, authority)
    assert witness_once(one).status == "cosigned"
    size = grow(witnessed, election.actas[:20])  # the tiles of this size are served…
    serve_checkpoint(witnessed, forge(election.root, size, "not the tiles' root"))  # …but not this root
    with pytest.raises(VerificationFailed, match="differs from the signed checkpoint's") as raised:
        witness_once(one)
    assert not isinstance(raised.value, EquivocationError)
    (evidence,) = evidence_dirs(state, "inconsistent")
    assert {p.name for p in evidence.iterdir()} == {
        "old.checkpoint",
        "new.checkpoint",
        "evidence.json",
        "README.txt",
        "tiles",
    }
    assert (evidence / "tiles" / "log" / "tile" / "0").is_dir()  # the tiles it read, to check again
    assert open_signed_checkpoint((state / "checkpoint").read_bytes(), one.log_key).checkpoint.size < size

    # Trust on first use still checks the tiles: a new witness refuses the same checkpoint.
    fresh = config(witnessed.url, W1, tmp_path / "fresh", authority)
    with pytest.raises(VerificationFailed, match="refused the first checkpoint"):
        witness_once(fresh)
    (first,) = evidence_dirs(tmp_path / "fresh", "inconsistent")
    assert not (first / "old.checkpoint").exists()
    assert not (tmp_path / "fresh" / "checkpoint").exists()


def test_a_smaller_checkpoint_is_refused_as_rollback_or_fork(
    witnessed: LiveServer, election: Election, tmp_path: Path
) -> None:
    """A mirror serving an older checkpoint: a prefix is a rollback (refused, noted once); another root a fork."""
    state = tmp_path / "w1"
    one = config(witnessed.url, W1, state, election.root / "keys" / "authority.key")
    grow(witnessed, election.actas[:8])
    assert witness_once(one).status == "cosigned"
    older = served(witnessed)
    small = open_signed_checkpoint(older, one.log_key).checkpoint.size
    grow(witnessed, election.actas[8:30])
    assert witness_once(one).status == "cosigned"
    mirror = tmp_path / "mirror"
    publish_bundle(DataDir(election.root), mirror)
    (mirror / "log" / "checkpoint").write_bytes(older)

    with static_mirror(mirror) as url:
        stale = config(url, W1, state, election.root / "keys" / "authority.key")
        first = witness_once(stale)
        assert (first.status, first.checkpoint.size) == ("rollback", small)
        assert first.evidence is not None
        assert first.evidence.name.startswith(f"rollback-{small}-")
        assert (first.evidence / "new.checkpoint").read_bytes() == older
        again = witness_once(stale)
        assert (again.status, again.evidence) == ("rollback", None)  # recorded once

        (mirror / "log" / "checkpoint").write_bytes(forge(election.root, small, "an older fork"))
        with pytest.raises(VerificationFailed, match=f"not an append-only extension of size {small}"):
            witness_once(stale)
    assert len(evidence_dirs(state, "inconsistent")) == 1
    assert len(evidence_dirs(state, "rollback")) == 1
