"""The streaming fast path of Election.from_json, the streamed canonical bytes, and the mesa id column."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actas.core import canonical, definition_stream
from actas.core.definition import load_json
from actas.core.election import Election
from actas.core.mesa_ids import CHUNK, MesaIds
from actas.errors import DefinitionError
from tests.core.test_election import definition, definitions


def _strict(data: bytes) -> Election | str:
    """The reference: the strict, path-reporting parser alone."""
    try:
        return Election(load_json(data))
    except DefinitionError as exc:
        return str(exc)


def _fast(data: bytes) -> Election | str:
    try:
        return Election.from_json(data)
    except DefinitionError as exc:
        return str(exc)


def _same(data: bytes) -> None:
    fast, strict = _fast(data), _strict(data)
    if isinstance(strict, str):
        assert fast == strict
        return
    assert isinstance(fast, Election)
    assert fast.to_value() == strict.to_value()
    assert fast.areas == strict.areas
    assert fast.digest == strict.digest
    assert list(fast.mesa_area_column()) == list(strict.mesa_area_column())
    assert fast.mesa_ids() == strict.mesa_ids()


def _unusual() -> dict[str, Any]:
    value = definition()
    value["title"] = 'Comillas " y barra \\ y 🗳️ — «ñ»'
    value["levels"] = ["estado_1", "municipio-m", "parroquia.p", "centro"]
    value["areas"][0]["name"] = 'Estado "Uno" \\ 𝔘'
    value["areas"][1]["children"][0]["name"] = "Mun<i>cipio &' é/"
    value["contests"][0]["options"][0]["name"] = '"A" \\'
    return value


def _encodings(value: dict[str, Any]) -> list[bytes]:
    return [
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=False, indent=2).encode(),
        json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(),
        Election.from_value(value).to_canonical(),
    ]


@pytest.mark.parametrize("value", [definition(), _unusual()], ids=["plain", "unusual-strings"])
def test_iter_canonical_is_canonical_encode(value: dict[str, Any]) -> None:
    election = Election.from_value(value)
    expected = canonical.encode(election.to_value())
    assert b"".join(election.iter_canonical()) == expected
    assert election.to_canonical() == expected
    for data in _encodings(value):
        parsed = Election.from_json(data)
        assert b"".join(parsed.iter_canonical()) == expected
        assert parsed.digest == election.digest


@pytest.mark.parametrize("value", [definition(), _unusual()], ids=["plain", "unusual-strings"])
def test_valid_input_takes_the_fast_path(value: dict[str, Any]) -> None:
    for data in _encodings(value):
        parts = definition_stream.parse(data)  # no Fallback
        fast = Election._from_parts(parts)
        assert fast.to_value() == Election.from_value(value).to_value()


@settings(max_examples=100, deadline=None)
@given(definitions())
def test_random_definitions_stream(value: dict[str, Any]) -> None:
    election = Election.from_value(value)
    assert b"".join(election.iter_canonical()) == canonical.encode(election.to_value())
    for data in _encodings(value):
        _same(data)
        Election._from_parts(definition_stream.parse(data))


_SNIPPETS = ['"', "{", "}", "[", "]", ",", ":", " ", "1.5", "-0", "1e2", '"x"', "[]", "{}", "null", "true", "\\u0041"]
_SNIPPETS += ['"id":"a",', '"area":"020101001",', '"registered":7,', '"children":[],', "\xe9", "\ud800", "\n"]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_input_gives_the_strict_answer(data: st.DataObject) -> None:
    """Whatever the bytes, from_json answers exactly as the strict parser: the same election or error."""
    text = data.draw(st.sampled_from(_encodings(definition())[:3])).decode()
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        text = text[:at] + data.draw(st.sampled_from([*_SNIPPETS, ""])) + text[at + cut :]
    _same(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"areas"', '"mesas": [], "areas"'),  # mesas before areas: read by the strict parser
        ('"v": 1', '"v": 1, "v": 1'),
        ('"registered": 612', '"registered": 612, "registered": 612'),
        ('"id": "010101001.02"', '"id": "010101001.01"'),
        ('"id": "020101001.01"', '"id": "010101001.01"'),  # out of order and repeated
        ('"area": "010101001"', '"area": "0101"'),
        ('"code": "010101002"', '"code": "010101001"'),
        ('"name": "Estado Uno"', '"name": "Estado \\u0000"'),
        ("}", "} x"),
    ],
)
def test_bad_inputs_give_the_strict_error(old: str, new: str) -> None:
    text = json.dumps(definition(), ensure_ascii=False)
    assert old in text
    data = text.replace(old, new, 1).encode()
    with pytest.raises(definition_stream.Fallback):
        Election._from_parts(definition_stream.parse(data))
    _same(data)


def test_unsorted_mesa_ids() -> None:
    value = definition()
    value["mesas"][2]["id"] = "000"
    election = Election.from_json(json.dumps(value).encode())
    assert election.mesa_index("000") == 2
    assert election.mesa_index("010101001.02") == 1
    assert election.mesa_index("0") is None
    _same(json.dumps(value).encode())


def test_small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of a few bytes: characters split across reads, values widened until complete."""
    for window, margin in ((1, 1), (3, 2), (7, 5)):
        monkeypatch.setattr(definition_stream, "_WINDOW", window)
        monkeypatch.setattr(definition_stream, "_MARGIN", margin)
        for data in [*_encodings(_unusual()), b"  \n" + _encodings(definition())[1] + b" \r\n\t"]:
            Election._from_parts(definition_stream.parse(data))
            _same(data)
        _same(_encodings(definition())[0] + b"   x")


def test_mesa_ids_column() -> None:
    ids = [f"m{i:06d}" for i in range(3 * CHUNK + 17)]
    for order in (ids, list(reversed(ids)), ids[1::2] + ids[::2]):
        column = MesaIds.of(order)
        assert column is not None
        assert len(column) == len(order)
        assert list(column) == order
        assert [column[i] for i in range(0, len(order), 997)] == order[::997]
        for i in [*range(0, len(order), 101), len(order) - 1, CHUNK - 1, CHUNK, CHUNK + 1]:
            assert column.index(order[i]) == i
        for missing in ("", "m", "m0000005", "m999999", "a", "z", "m000001\nm000002", "m000001 "):
            assert column.index(missing) is None
    assert MesaIds.of(["b", "a", "c", "a"]) is None
    assert MesaIds.of(["a", "b", "b"]) is None
    empty = MesaIds.of([])
    assert empty is not None
    assert len(empty) == 0
    assert empty.index("a") is None
    assert list(empty) == []


_MEMORY_CHECK = """
import gc, resource, sys, time
from actas.core.election import Election

def status(key):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(key)) / 1024

def rss():
    return status("VmRSS:")

def peak():
    # ru_maxrss can carry the peak of the (large) parent across fork and exec; VmHWM is this image's own.
    return min(status("VmHWM:"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

data = open(sys.argv[1], "rb").read()
start = time.perf_counter()
election = Election.from_json(data)
seconds = time.perf_counter() - start
parse_peak = peak()
del data
gc.collect()
resident = rss()
digest = election.digest
print(parse_peak, resident, peak(), seconds, election.mesa_count, digest.hex())
"""


@pytest.mark.slow
def test_million_mesas_fit_in_memory(tmp_path: Path) -> None:
    from actas.simulate.geography import generate_election  # numpy: imported by this test only

    election = generate_election(1_000_000, 1)
    path = tmp_path / "election.json"
    path.write_bytes(election.to_canonical())
    digest = election.digest
    del election
    script = textwrap.dedent(_MEMORY_CHECK)
    out = subprocess.run([sys.executable, "-c", script, str(path)], check=True, capture_output=True, text=True)
    parse_peak, resident, digest_peak, seconds, count, hex_digest = out.stdout.split()
    assert int(count) == 1_000_000
    assert hex_digest == digest.hex()
    assert float(parse_peak) <= 350, out.stdout
    assert float(resident) <= 250, out.stdout
    assert float(digest_peak) <= float(parse_peak) + 30, out.stdout
    assert float(seconds) <= 8, out.stdout
