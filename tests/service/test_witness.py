"""Witnesses against a real service on loopback: they cosign as the log grows, the log serves and publishes their
cosignatures, and ``actas verify --witness`` requires them."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actas.core.b64 import b64decode, b64encode
from actas.core.keys import Signer, Verifier
from actas.core.note import cosigner_key_id, open_signed_checkpoint, parse_note
from actas.core.witness_check import check_witnesses
from actas.errors import EnrollmentError, StorageError
from actas.service.runtime import ServiceConfig
from actas.service.witness import RoundResult, run_witness, witness_once
from actas.service.witness_state import WitnessState
from tests.service.conftest import Election, LiveServer
from tests.service.witnesses import W1, W2, W3, Cli, config, grow, served, size_of


@pytest.fixture
def actas(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    """The actas command line, in this process."""
    return Cli(monkeypatch, capsys, tmp_path)


@pytest.fixture
def witnessed(election: Election) -> Iterator[LiveServer]:
    """The service over a fresh copy of the election, accepting cosignatures from W1 and W2."""
    live = LiveServer(ServiceConfig(data_dir=election.root, witnesses=(W1.verifier, W2.verifier)))
    yield live
    live.stop()


def authority_key(election: Election) -> Path:
    """The authority's private key file in the data directory (the witnesses take its verifier key)."""
    return election.root / "keys" / "authority.key"


def test_two_witnesses_cosign_as_the_log_grows_and_verify_requires_them(
    witnessed: LiveServer, election: Election, actas: Cli, tmp_path: Path
) -> None:
    one = config(witnessed.url, W1, tmp_path / "w1", authority_key(election))
    two = config(witnessed.url, W2, tmp_path / "w2", authority_key(election))
    start = size_of(witnessed)
    first = witness_once(one)  # trust on first use, after the tiles give the root
    assert (first.status, first.checkpoint.size, first.accepted) == ("cosigned", start, (W1.name,))

    for batch in (election.actas[:10], election.actas[10:35]):
        size = grow(witnessed, batch)
        for witness, signer in ((one, W1), (two, W2)):
            result = witness_once(witness)
            assert (result.status, result.checkpoint.size, result.accepted) == ("cosigned", size, (signer.name,))
        signed = open_signed_checkpoint(served(witnessed), one.log_key)
        assert signed.checkpoint.size == size
        check = check_witnesses(signed.note, [W1.verifier, W2.verifier])
        assert check.ok, check.problem()
        assert [s.timestamp for s in check.statuses] == [1_750_000_000, 1_750_000_000]
    assert witness_once(one).status == "unchanged"
    saved = (tmp_path / "w1" / "checkpoint").read_bytes()
    assert open_signed_checkpoint(saved, one.log_key).checkpoint.size == size

    bundle = tmp_path / "bundle"
    assert actas("publish", election.root, "--out", bundle).code == 0
    published = parse_note((bundle / "log" / "checkpoint").read_bytes())
    assert check_witnesses(published, [W1.verifier, W2.verifier]).ok
    key = election.root / "keys" / "authority.vkey"
    base = ("verify", bundle, "--key", key, "-j", "0")
    both = ("--witness", str(W1.verifier), "--witness", str(W2.verifier))

    passed = actas(*base, *both)
    assert passed.code == 0, passed.out
    assert "VERIFIED" in passed.out
    assert f"witnesses: 2 of 2 required ({W1.name} ({W1.verifier.key_id_hex}), {W2.name}" in passed.out
    assert actas(*base, *both, "--min-witnesses", "1").code == 0

    as_json = actas(*base, *both, "--json", "-")
    assert as_json.code == 0
    report = json.loads(as_json.out)
    assert report["witnesses"]["required"] == report["witnesses"]["valid"] == 2
    assert [w["name"] for w in report["witnesses"]["witnesses"]] == [W1.name, W2.name]

    never = actas(*base, *both, "--witness", str(W3.verifier))
    assert never.code == 1
    assert "step 1 log/checkpoint: 2 of 3 required witness cosignatures" in never.out
    assert f"missing: {W3.name} ({W3.verifier.key_id_hex})" in never.out
    assert "VERIFICATION FAILED" in never.out
    assert actas(*base, *both, "--witness", str(W3.verifier), "--min-witnesses", "2").code == 0
    usage = actas(*base, "--witness", str(W1.verifier), "--min-witnesses", "2")
    assert usage.code == 2

    _tamper_cosignature(bundle / "log" / "checkpoint", W1.verifier)
    broken = actas(*base, *both)
    assert broken.code == 1
    assert "step 1 log/checkpoint: 1 of 2 required witness cosignatures" in broken.out
    assert f"invalid: {W1.name} ({W1.verifier.key_id_hex}): cosignature by {W1.name!r} does not verify" in broken.out
    assert actas(*base, "--witness", str(W2.verifier)).code == 0  # W2's cosignature still holds


def _tamper_cosignature(path: Path, witness: Verifier) -> None:
    """Flip one byte of a witness's Ed25519 cosignature in a checkpoint file."""
    key_id = cosigner_key_id(witness)
    lines = path.read_text(encoding="utf-8").split("\n")
    for n, line in enumerate(lines):
        if line.startswith(f"— {witness.name} "):
            raw = bytearray(b64decode(line.rsplit(" ", 1)[1], "line"))
            assert int.from_bytes(raw[:4], "big") == key_id
            raw[4 + 8 + 10] ^= 0x01  # past the key id and the timestamp: inside the signature
            lines[n] = f"— {witness.name} {b64encode(bytes(raw))}"
    path.write_text("\n".join(lines), encoding="utf-8")


def test_a_witness_resubmits_its_cosignature_when_the_log_lost_it(election: Election, tmp_path: Path) -> None:
    """A log that refused the cosignature (not configured yet) gets it again on the next round once it accepts."""
    plain = LiveServer(ServiceConfig(data_dir=election.root))  # no witness configured: 403
    try:
        one = config(plain.url, W1, tmp_path / "w1", authority_key(election))
        with pytest.raises(EnrollmentError, match="HTTP 403"):
            witness_once(one)
        assert (tmp_path / "w1" / "checkpoint").exists()  # saved before it was sent
    finally:
        plain.stop()
    live = LiveServer(ServiceConfig(data_dir=election.root, witnesses=(W1.verifier,)))
    try:
        one = config(live.url, W1, tmp_path / "w1", authority_key(election))
        again = witness_once(one)
        assert (again.status, again.accepted) == ("resubmitted", (W1.name,))
        assert check_witnesses(parse_note(served(live)), [W1.verifier]).ok
        assert witness_once(one).status == "unchanged"
    finally:
        live.stop()


def test_the_loop_cosigns_new_checkpoints_and_survives_network_errors(
    witnessed: LiveServer, election: Election, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connection refused at once
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    stop = threading.Event()
    offline = config(dead, W2, tmp_path / "offline", authority_key(election))
    thread = threading.Thread(target=run_witness, args=(offline, 0.05, stop), daemon=True)
    thread.start()
    thread.join(timeout=0.5)
    assert thread.is_alive()  # retrying, not crashed
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert "witness round failed (fetch)" in caplog.text

    rounds: list[RoundResult] = []
    stop = threading.Event()
    one = config(witnessed.url, W1, tmp_path / "w1", authority_key(election))
    thread = threading.Thread(target=run_witness, args=(one, 0.05, stop, rounds.append), daemon=True)
    thread.start()
    try:
        size = grow(witnessed, election.actas[:5])
        for _ in range(200):
            if any(r.checkpoint.size == size and r.status == "cosigned" for r in rounds):
                break
            time.sleep(0.02)
        assert any(r.checkpoint.size == size and r.status == "cosigned" for r in rounds)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert check_witnesses(parse_note(served(witnessed)), [W1.verifier]).ok


def test_witness_command_and_keygen(witnessed: LiveServer, election: Election, actas: Cli, tmp_path: Path) -> None:
    made = actas("keygen", "witness.example/new", "--out", tmp_path / "keys" / "new")
    assert made.code == 0, made.err
    private, public = tmp_path / "keys" / "new.key", tmp_path / "keys" / "new.vkey"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    signer = Signer.parse(private.read_text(encoding="utf-8").strip())
    assert Verifier.parse(public.read_text(encoding="utf-8").strip()) == signer.verifier
    assert signer.name == "witness.example/new"
    assert actas("keygen", "witness.example/new", "--out", tmp_path / "keys" / "new").code == 3  # never overwrites
    assert actas("keygen", "bad name", "--out", tmp_path / "bad").code == 3

    (tmp_path / "w1.key").write_text(str(W1) + "\n", encoding="utf-8")
    args = ("witness", "--log", witnessed.url, "--log-key", election.root / "keys" / "authority.vkey")
    once = actas(*args, "--key", tmp_path / "w1.key", "--once")
    assert once.code == 0, once.err
    assert f"cosigned size {size_of(witnessed):,}" in once.out
    assert f"(log accepted: {W1.name})" in once.out
    default_state = list((tmp_path / "state-home" / "actas" / "witness").iterdir())
    assert len(default_state) == 1
    assert (default_state[0] / "checkpoint").exists()
    assert "unchanged" in actas(*args, "--key", tmp_path / "w1.key", "--once").out
    refused = actas(*args, "--key", private, "--once", "--state", tmp_path / "new-state")
    assert refused.code == 3  # the log does not know this witness
    assert "unenrolled-key" in refused.err


def test_the_state_directory_is_one_witness_process_and_one_log(
    witnessed: LiveServer, election: Election, tmp_path: Path
) -> None:
    one = config(witnessed.url, W1, tmp_path / "w1", authority_key(election))
    held = WitnessState(tmp_path / "w1")
    try:
        with pytest.raises(StorageError, match="another witness process is using this state directory"):
            witness_once(one)
    finally:
        held.close()
    assert witness_once(one).status == "cosigned"
    (tmp_path / "w1" / "checkpoint").write_bytes(b"not a checkpoint\n")
    with pytest.raises(StorageError, match="not a checkpoint of this log"):
        witness_once(one)
