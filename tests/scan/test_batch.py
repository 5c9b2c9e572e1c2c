"""The batch scanner on a folder of generated witness images: every status, duplicates, conflicts, jobs.

The folder holds printed actas of a simulated 38-ticket election captured at each photo level, the cases a
witness network meets (a copied file, a second photo, a second signed acta for a mesa, a tampered signature, a
mesa or an election the definition does not know, a CNE 2024 QR, a page without QR, broken files, a zip with a
member climbing out of it, an empty PDF), and is scanned once in this process and once with two workers.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import multiprocessing
import zipfile
from pathlib import Path

import numpy as np
import pytest
import segno
from numpy.typing import NDArray
from PIL import Image

from actas.core import canonical
from actas.core.acta import Acta, option_totals
from actas.core.election import Election
from actas.core.entries import ActaEntry, acta_entry, parse_entry
from actas.core.qr import decode_payload, encode_payload
from actas.core.qr_cne import CnePayload, format_cne
from actas.errors import MalformedError
from actas.scan.batch import STATUSES, ScanRecord, ScanReport, scan
from actas.scan.photo import LEVELS, capture
from actas.scan.render import render_png
from actas.simulate.geography import generate_election
from actas.simulate.run import device_signer, signed_actas
from tests.factories import signed_acta, small_election

SEED = 1


def gray(png: bytes) -> NDArray[np.uint8]:
    """A rendered PNG as a grayscale array."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


def encode_png(page: NDArray[np.uint8]) -> bytes:
    """A grayscale array as PNG bytes."""
    out = io.BytesIO()
    Image.fromarray(page).save(out, "PNG")
    return out.getvalue()


def qr_page(*texts: str) -> NDArray[np.uint8]:
    """A white page (A4 at 150 dpi) with text-like strokes and a QR code for each text, side by side."""
    page = np.full((1754, 1240), 255, np.uint8)
    for row in range(120, 700, 40):
        page[row : row + 12, 100 : 100 + (row * 7) % 900 + 100] = 40
    for i, text in enumerate(texts):
        modules = np.array(list(segno.make(text, error="m").matrix_iter(scale=4, border=4)), dtype=bool)
        top, left = 800, 60 + i * 600
        height, width = modules.shape
        page[top : top + height, left : left + width] = np.where(modules, 0, 255)
    return page


def tamper_signature(entry: bytes) -> bytes:
    """The same entry with one bit of its signature flipped (still canonical JSON)."""
    value = json.loads(entry)
    signature = bytearray(base64.b64decode(value["sig"]))
    signature[10] ^= 1
    value["sig"] = base64.b64encode(bytes(signature)).decode()
    return canonical.encode(value)


def resigned(election: Election, entry: bytes, index: int, **changes: object) -> bytes:
    """The acta of an entry with some fields changed, signed again by the mesa's simulated device."""
    parsed = parse_entry(entry).entry
    assert isinstance(parsed, ActaEntry)
    acta = dataclasses.replace(parsed.acta, **changes)  # type: ignore[arg-type]
    if "tickets" in changes:
        acta = dataclasses.replace(acta, options=option_totals(acta.tickets, election.contests[0]))
    return acta_entry(acta, device_signer(SEED, index))


def acta_of(entry: bytes) -> Acta:
    """The acta of a signed entry."""
    parsed = parse_entry(entry).entry
    assert isinstance(parsed, ActaEntry)
    return parsed.acta


@dataclasses.dataclass(frozen=True)
class Corpus:
    """The folder, its definition, the entries printed in it and the status each path must get."""

    folder: Path
    election: Election
    entries: list[bytes]
    expected: dict[str, str]
    conflicted: frozenset[str]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """Write the witness folder once for the module."""
    folder = tmp_path_factory.mktemp("witness")
    election = generate_election(20, seed=SEED)
    entries = list(signed_actas(election, SEED))
    expected: dict[str, str] = {}

    def put(name: str, data: bytes, status: str) -> None:
        (folder / name).write_bytes(data)
        expected[str(folder / name)] = status

    pages = {i: gray(render_png(entries[i], election)) for i in (0, 1, 2, 3)}
    for i, level in enumerate(LEVELS):
        shot = capture(pages[i], level, seed=i)
        put(f"a{i + 1}-{level}.{'jpg' if shot.format == 'jpeg' else 'png'}", shot.data, "ok")
    first = (folder / "a1-scan.jpg") if (folder / "a1-scan.jpg").exists() else (folder / "a1-scan.png")
    put("b1-copy" + first.suffix, first.read_bytes(), "duplicate-image")
    put("b2-second-photo.jpg", capture(pages[0], "phone-good", seed=7).data, "duplicate-payload")
    other = resigned(election, entries[1], 1, tickets=(7,) * 38)
    put("c1-conflict.png", render_png(other, election), "ok")
    put("d1-bad-signature.png", encode_png(qr_page(encode_payload(tamper_signature(entries[5])))), "bad-signature")
    stranger = resigned(election, entries[6], 6, mesa="999999999.99")
    put("d2-unknown-mesa.png", encode_png(qr_page(encode_payload(stranger))), "unknown-mesa")
    small = small_election()
    put("d3-wrong-election.png", render_png(signed_acta(small, 0), small), "wrong-election")
    same = acta_of(entries[2])  # the CNE copy of mesa 2 states what its own acta states: no conflict
    centre, table = same.mesa.split(".")
    cne = format_cne(CnePayload(centre, table, "1", "0001", same.tickets, same.null, 0))
    put("e1-cne.png", encode_png(qr_page(cne)), "ok")
    put("e2-not-an-acta.png", encode_png(qr_page("HELLO WITNESS 2024")), "bad-payload")
    put("f1-no-qr.png", encode_png(qr_page()), "no-qr")
    jpeg = capture(pages[3], "scan", seed=3).data
    put("g1-truncated.jpg", jpeg[: len(jpeg) // 2], "error")
    put("g2-text.jpg", b"this is a note, not a photo\n", "error")
    put("g3-empty.pdf", b"", "error")
    with zipfile.ZipFile(folder / "h1.zip", "w") as archive:
        archive.writestr("../evil.png", encode_png(qr_page()))
        archive.writestr("inner/good.png", encode_png(qr_page(encode_payload(entries[4]))))
    expected[f"{folder / 'h1.zip'}!../evil.png"] = "error"
    expected[f"{folder / 'h1.zip'}!inner/good.png"] = "ok"
    conflicted = frozenset({str(folder / "c1-conflict.png"), str(folder / "a2-phone-good.jpg")})
    return Corpus(folder, election, [*entries[:5], other], expected, conflicted)


@pytest.fixture(scope="module")
def serial(corpus: Corpus) -> ScanReport:
    """The folder scanned in this process."""
    return scan([corpus.folder], corpus.election, jobs=1)


@pytest.fixture(scope="module")
def pooled(corpus: Corpus) -> ScanReport:
    """The folder scanned by two worker processes."""
    return scan([corpus.folder], corpus.election, jobs=2)


def test_every_source_gets_its_status(corpus: Corpus, serial: ScanReport) -> None:
    """Each image is classified as built: the paths come back in input order, none missing, none extra."""
    got = {r.path: r.status for r in serial.records}
    assert got == corpus.expected
    assert [r.path for r in serial.records] == sorted(got, key=lambda p: (p.split("!")[0], p))


def test_ok_reads_are_exactly_the_signed_entries(corpus: Corpus, serial: ScanReport) -> None:
    """An ok actas1 record carries the printed payload; it decodes to the exact signed bytes."""
    read = {
        decode_payload(r.payload) for r in serial.records if r.status == "ok" and r.format == "actas1" and r.payload
    }
    assert read == set(corpus.entries)


def test_conflicts_flag_both_actas_and_only_them(corpus: Corpus, serial: ScanReport) -> None:
    """Two differently counted, validly signed actas of one mesa are both flagged; a CNE copy that agrees is not."""
    assert {r.path for r in serial.records if r.conflict} == corpus.conflicted
    assert serial.summary.conflicting_mesas == 1
    cne = next(r for r in serial.records if r.format == "cne2024")
    assert cne.copy is not None
    assert cne.copy.blank is None
    assert not cne.conflict


def test_duplicates_point_to_the_first(corpus: Corpus, serial: ScanReport) -> None:
    """A copied file is not decoded again; a second photo is recognised by its payload."""
    by_status = {r.status: r for r in serial.records}
    image, payload = by_status["duplicate-image"], by_status["duplicate-payload"]
    assert image.duplicate_of is not None
    assert image.duplicate_of.endswith("a1-scan" + Path(image.path).suffix)
    assert image.step is None
    assert image.attempts == 0
    assert payload.duplicate_of == image.duplicate_of
    assert payload.payload == next(r.payload for r in serial.records if r.path == image.duplicate_of)


def test_reasons_are_given(serial: ScanReport) -> None:
    """Every record that is not ok or a duplicate says why; wrong-election names both origins."""
    for record in serial.records:
        if record.status in ("ok", "duplicate-image", "duplicate-payload"):
            continue
        assert record.reason, record
    reasons = {r.status: r.reason or "" for r in serial.records}
    assert "test-election" in reasons["wrong-election"]
    assert "ve-2024-sim" in reasons["wrong-election"]
    assert "999999999.99" in reasons["unknown-mesa"]
    evil = next(r for r in serial.records if r.path.endswith("../evil.png"))
    assert ".." in (evil.reason or "")
    assert evil.sha256 is None  # never read, so never hashed
    truncated = next(r for r in serial.records if r.path.endswith("g1-truncated.jpg"))
    assert truncated.sha256 is not None


def test_summary_counts_every_status(corpus: Corpus, serial: ScanReport) -> None:
    """The summary counts each status, the sources read and the images produced."""
    summary = serial.summary
    assert set(summary.counts) == set(STATUSES)
    for status in STATUSES:
        assert summary.counts[status] == sum(1 for s in corpus.expected.values() if s == status)
    assert summary.images == len(corpus.expected)
    assert summary.sources == len(corpus.expected)
    assert summary.images_per_second > 0
    assert json.loads(json.dumps(summary.to_json()))["counts"]["ok"] == summary.counts["ok"]


def test_two_jobs_give_the_same_records(serial: ScanReport, pooled: ScanReport) -> None:
    """The process pool returns the same records, in the same order, as the in-process run (timings aside)."""

    def timeless(report: ScanReport) -> list[dict[str, object]]:
        return [{k: v for k, v in r.to_json().items() if k != "timing_ms"} for r in report.records]

    assert timeless(pooled) == timeless(serial)
    assert not multiprocessing.active_children()


def test_records_are_json_lines(serial: ScanReport) -> None:
    """Each record is a JSON object with the documented fields, sorted, and survives a round trip."""
    for record in serial.records:
        value = record.to_json()
        assert list(value) == sorted(value)
        assert json.loads(json.dumps(value, ensure_ascii=False)) == value
        assert set(value["timing_ms"]) == {"load", "decode", "total"}
    ok = next(r for r in serial.records if r.status == "ok" and r.format == "actas1")
    copy = ok.to_json()["copy"]
    assert set(copy) == {"mesa", "contest", "tickets", "options", "null", "blank", "registered", "device"}
    assert len(copy["tickets"]) == 38
    assert ok.signature == "valid"


def test_without_a_definition(tmp_path: Path) -> None:
    """With no definition an own-format acta of any election is ok; a CNE QR cannot be read and says so."""
    small = small_election()
    (tmp_path / "a.png").write_bytes(render_png(signed_acta(small, 1), small))
    cne = format_cne(CnePayload("010101001", "01", "1", "0001", (1, 2, 3, 4), 0, 0))
    (tmp_path / "b.png").write_bytes(encode_png(qr_page(cne)))
    report = scan([tmp_path], None, jobs=1)
    assert [r.status for r in report.records] == ["ok", "bad-payload"]
    assert report.records[0].copy is not None
    assert report.records[0].copy.mesa == small.mesa_id(1)
    assert "needs the election" in (report.records[1].reason or "")


def test_two_different_actas_in_one_image_are_refused(tmp_path: Path) -> None:
    """One photo must show one acta: two different valid QR codes are not both counted, nor one of them."""
    small = small_election()
    texts = [encode_payload(signed_acta(small, i)) for i in (0, 1)]
    (tmp_path / "two.png").write_bytes(encode_png(qr_page(*texts)))
    (record,) = scan([tmp_path], small, jobs=1).records
    assert record.status == "bad-payload"
    assert "2 different" in (record.reason or "")


def test_ctrl_c_stops_the_pool(tmp_path: Path) -> None:
    """An interrupt during the batch ends it: no worker process is left running."""
    for i in range(6):
        (tmp_path / f"{i}.png").write_bytes(encode_png(qr_page()))

    def interrupt(done: int, total: int | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan([tmp_path], None, jobs=2, progress=interrupt)
    assert not multiprocessing.active_children()


def test_record_is_valid_by_construction() -> None:
    """A record with an unknown status, a missing or malformed hash or an ok without its copy cannot be built."""
    digest = "0" * 64
    with pytest.raises(MalformedError):
        ScanRecord("x.jpg", digest, "maybe")  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        ScanRecord("x.jpg", "ABC", "no-qr")
    with pytest.raises(MalformedError):
        ScanRecord("x.jpg", None, "no-qr")
    with pytest.raises(MalformedError):
        ScanRecord("x.jpg", digest, "ok")
    with pytest.raises(MalformedError):
        ScanRecord("x.jpg", digest, "no-qr", conflict=True)


def test_jobs_must_be_positive(tmp_path: Path) -> None:
    """Zero processes is refused up front."""
    with pytest.raises(MalformedError):
        scan([tmp_path], None, jobs=0)


BOLETIM = [  # a 1.4 boletim de urna: identification, then one majoritarian cargo
    *("ORIG:VOTA", "ORLC:LEG", "PROC:406", "DTPL:20221002", "PLEI:406", "TURN:1", "FASE:O", "UNFE:SP"),
    *("MUNI:71072", "ZONA:0001", "SECA:0015", "IDUE:1234567", "APTO:350", "IDEL:544", "CARG:1", "TIPO:0"),
    *("VERC:202208051200", "13:120", "22:100", "APTA:350", "NOMI:220", "BRAN:5", "NULO:7", "TOTC:232"),
]


def boletim_parts(records: list[str], cut: int) -> list[str]:
    """The two QR texts (VRQR 1.4) of a boletim cut after ``cut`` records, with their SHA-512 hash chain."""
    chunks = [records[:cut], records[cut:]]
    texts, chained = [], ""
    for index, chunk in enumerate(chunks, 1):
        data = " ".join(chunk)
        covered = data if not chained else f"{chained} {data}"
        digest = hashlib.sha512(covered.encode()).hexdigest().upper()
        chained = f"{covered} HASH:{digest}"
        signature = " ASSI:" + "AB" * 64 if index == len(chunks) else ""
        texts.append(f"QRBU:{index}:{len(chunks)} VRQR:1.4 {data} HASH:{digest}{signature}")
    return texts


def test_boletim_parts_in_one_image_are_assembled(tmp_path: Path) -> None:
    """All parts of a boletim in one photo: assembled and ok (hash chain checked); one part alone is incomplete."""
    parts = boletim_parts(BOLETIM, 14)
    (tmp_path / "a-whole.png").write_bytes(encode_png(qr_page(*parts)))
    (tmp_path / "b-half.png").write_bytes(encode_png(qr_page(parts[1])))
    altered = parts[1].replace(" 13:120 ", " 13:121 ")  # a vote count changed, its HASH kept
    assert altered != parts[1]
    (tmp_path / "c-altered.png").write_bytes(encode_png(qr_page(parts[0], altered)))
    whole, half, tampered = scan([tmp_path], None, jobs=1).records
    assert whole.status == "ok"
    assert whole.format == "qrbu"
    assert whole.copy is not None
    assert whole.copy.mesa == "71072.0001.0015"
    assert whole.payload == "\n".join(parts)
    assert "ASSI" in (whole.reason or "")
    assert half.status == "bad-payload"
    assert half.reason == "incomplete boletim: parts 2 of 2 found"
    assert tampered.status == "bad-payload"
    assert "HASH" in (tampered.reason or "")
