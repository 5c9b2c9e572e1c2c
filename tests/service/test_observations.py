"""Witness observations end to end: photos of printed actas → `actas observe` or POST /v1/observations → the log,
the image store, the published bundle, the verifier and the cross-check."""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from actas.audit.crosscheck import crosscheck_data_dir
from actas.core.election import Election as Definition
from actas.core.entries import ObservationEntry, observation_entry, parse_entry
from actas.core.keys import Signer, Verifier
from actas.core.merkle import leaf_hash
from actas.core.qr import encode_payload
from actas.log.writer import LogWriter
from actas.publish.bundle import publish_bundle
from actas.scan.photo import Level, capture
from actas.scan.render import render_acta, render_pdf
from actas.storage.filelock import FileLock
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore
from actas.verifier.readers import DirectoryReader
from actas.verifier.runner import verify
from tests.conftest import Cli
from tests.factories import seed
from tests.service.conftest import Election, LiveServer

WITNESS = Signer("witness.example/observers", seed("observers"))
OFFICIAL = range(0, 6)  # mesas whose official acta the authority logs
PHOTOGRAPHED = (0, 1, 2, 30)  # mesas a witness photographs: 30 was never logged officially


def _log_official(data: DataDir, actas: list[bytes]) -> None:
    election = Definition.from_json(data.election.read_bytes())
    authority = Signer.parse(data.authority_key.read_text(encoding="utf-8").strip())
    writer = LogWriter(SqliteLogStore(data.database), data.log, election, authority)
    try:
        assert all(r.status == "appended" for r in writer.append([actas[i] for i in OFFICIAL]))
    finally:
        writer.close()


def _photo(acta: bytes, data: DataDir, level: Level, n: int) -> bytes:
    election = Definition.from_json(data.election.read_bytes())
    return capture(render_acta(acta, election), level, seed=n).data


def _log_size(data: DataDir) -> int:
    store = SqliteLogStore(data.database)
    try:
        return store.size()
    finally:
        store.close()


@pytest.fixture
def photos(election: Election, tmp_path: Path) -> Path:
    """A witness's folder: a phone photo of each photographed acta, one photo twice, and a file that is no image."""
    folder = tmp_path / "photos"
    folder.mkdir()
    data = DataDir(election.root)
    for n, mesa in enumerate(PHOTOGRAPHED):
        (folder / f"mesa-{mesa}.jpg").write_bytes(_photo(election.actas[mesa], data, "phone-good", n))
    (folder / "copy-of-mesa-0.jpg").write_bytes((folder / "mesa-0.jpg").read_bytes())
    (folder / "notes.jpg").write_bytes(b"not a photo at all")
    return folder


@pytest.fixture
def witness_key(tmp_path: Path) -> Path:
    """The witness's private key file."""
    path = tmp_path / "witness.key"
    path.write_text(str(WITNESS) + "\n", encoding="utf-8")
    return path


def test_observe_logs_each_copy_once_stores_images_and_publishes_a_verifiable_bundle(
    election: Election, photos: Path, witness_key: Path, tmp_path: Path, cli: Cli
) -> None:
    data = DataDir(election.root)
    _log_official(data, election.actas)
    before = _log_size(data)
    result = cli("observe", str(data.root), str(photos), "--witness-key", str(witness_key), "-j", "2")
    assert result.code == 0, result.err
    out = result.out
    assert "4 observations logged" in out, out
    assert _log_size(data) == before + len(PHOTOGRAPHED)
    stored = sorted(p.name for p in data.images.iterdir())
    expected = sorted(
        f"{hashlib.sha256((photos / f'mesa-{m}.jpg').read_bytes()).hexdigest()}.jpg" for m in PHOTOGRAPHED
    )
    assert stored == expected

    # Observing the same folder again changes nothing.
    result = cli("observe", str(data.root), str(photos), "--witness-key", str(witness_key))
    assert result.code == 0, result.err
    assert "0 observations logged, 4 already in the log" in result.out
    assert _log_size(data) == before + len(PHOTOGRAPHED)

    publish_bundle(data, tmp_path / "bundle")
    assert sorted(p.name for p in (tmp_path / "bundle" / "images").iterdir()) == expected
    authority = Verifier.parse(data.authority_vkey.read_text(encoding="utf-8").strip())
    report = verify(DirectoryReader(tmp_path / "bundle"), authority, workers=0)
    assert report.ok, report.failures
    assert report.counts.get("observation") == len(PHOTOGRAPHED)

    checks = {c.mesa: c.status for c in crosscheck_data_dir(data.root).checks}
    mesa_id = Definition.from_json(data.election.read_bytes()).mesa_id
    assert {m: checks[mesa_id(m)] for m in PHOTOGRAPHED} == {0: "match", 1: "match", 2: "match", 30: "official-missing"}
    assert {checks[mesa_id(m)] for m in (3, 4, 5)} == {"witness-missing"}


def test_observe_refuses_while_a_service_sequences_the_directory(
    election: Election, photos: Path, witness_key: Path, cli: Cli
) -> None:
    data = DataDir(election.root)
    lock = FileLock(data.root / "sequencer.lock")
    assert lock.try_acquire()
    try:
        before = _log_size(data)
        result = cli("observe", str(data.root), str(photos), "--witness-key", str(witness_key))
        assert result.code == 3, result.err
        assert "a service is sequencing this data directory" in " ".join(result.err.split())
        assert _log_size(data) == before
        assert not data.images.exists()
    finally:
        lock.release()


# -- the service ------------------------------------------------------------------------------------------------


def _upload(server: LiveServer, entry: bytes, image: bytes, name: str = "photo.jpg") -> tuple[int, dict[str, object]]:
    response = server.client.post(
        "/v1/observations", data={"entry": entry.decode()}, files={"image": (name, image, "image/jpeg")}
    )
    return response.status_code, response.json()


def _observation(election: Election, mesa: int, image: bytes, signer: Signer = WITNESS) -> bytes:
    definition = Definition.from_json(DataDir(election.root).election.read_bytes())
    digest = hashlib.sha256(image).hexdigest()
    payload = encode_payload(election.actas[mesa])
    return observation_entry(definition.origin, definition.mesa_id(mesa), "actas1", digest, payload, signer)


def test_service_takes_an_observation_with_its_image_and_a_resend_gets_the_same_receipt(
    election: Election, serve: Callable[..., LiveServer]
) -> None:
    server = serve(witnesses=(WITNESS.verifier,))
    data = DataDir(election.root)
    image = _photo(election.actas[3], data, "phone-good", 7)
    entry = _observation(election, 3, image)
    status, body = _upload(server, entry, image)
    assert status == 201, body
    assert body["status"] == "accepted"
    again_status, again = _upload(server, entry, image)
    assert again_status == 200
    assert again["receipt"] == body["receipt"]
    assert (data.images / f"{hashlib.sha256(image).hexdigest()}.jpg").read_bytes() == image


@pytest.mark.parametrize(
    "case",
    ["unknown-witness", "hash-differs", "image-shows-another-acta", "not-an-image", "bomb", "not-multipart"],
)
def test_service_refuses_bad_observations_and_stores_nothing(
    election: Election, serve: Callable[..., LiveServer], case: str
) -> None:
    server = serve(witnesses=(WITNESS.verifier,))
    data = DataDir(election.root)
    image = _photo(election.actas[3], data, "scan", 1)
    entry = _observation(election, 3, image)
    expected = (400, "malformed")
    reason = {
        "unknown-witness": "not one this service accepts",
        "hash-differs": "SHA-256 differs",
        "image-shows-another-acta": "no QR code in it carries",
        "not-an-image": "not a JPEG, PNG",
        "bomb": "pixels",
        "not-multipart": "multipart/form-data",
    }[case]
    if case == "unknown-witness":
        entry = _observation(election, 3, image, Signer("stranger", seed("stranger")))
        expected = (403, "unenrolled-key")
    elif case == "hash-differs":
        image = image[:-1] + bytes([image[-1] ^ 1])
    elif case == "image-shows-another-acta":
        image = _photo(election.actas[4], data, "scan", 1)
        entry = _observation(election, 3, image)  # claims mesa 3's payload over a photo of mesa 4
    elif case == "not-an-image":
        image = b"%not an image"
        entry = _observation(election, 3, image)
    elif case == "bomb":
        big = Image.new("1", (20_000, 20_000), 1)
        buffer = io.BytesIO()
        big.save(buffer, "PNG")
        image = buffer.getvalue()
        entry = _observation(election, 3, image)
    if case == "not-multipart":
        response = server.client.post("/v1/observations", content=entry, headers={"content-type": "application/json"})
        status, body = response.status_code, response.json()
    else:
        status, body = _upload(server, entry, image)
    assert (status, body["code"]) == expected, body
    assert reason in body["detail"], body
    assert not data.images.exists() or not any(data.images.iterdir())
    assert server.runtime.reader.submitted([leaf_hash(entry)]) == {}


def test_observe_logs_every_page_and_pairs_each_copy_with_the_bytes_scanned(
    election: Election, witness_key: Path, tmp_path: Path, cli: Cli
) -> None:
    data = DataDir(election.root)
    definition = Definition.from_json(data.election.read_bytes())
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "two-pages.pdf").write_bytes(render_pdf([election.actas[5], election.actas[6]], definition))
    first, second = (_photo(election.actas[m], data, "scan", m) for m in (7, 8))
    with warnings.catch_warnings():  # zip allows two members of one name; so must we
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(folder / "same-names.zip", "w") as archive:
            archive.writestr("photo.jpg", first)
            archive.writestr("photo.jpg", second)
    (folder / "scan#page=1.jpg").write_bytes(_photo(election.actas[9], data, "scan", 9))
    before = _log_size(data)
    result = cli("observe", str(data.root), str(folder), "--witness-key", str(witness_key), "-j", "1")
    assert result.code == 0, result.err
    assert "5 observations logged" in result.out
    assert _log_size(data) == before + 5
    store = SqliteLogStore(data.database)
    try:
        logged = [parse_entry(e).entry for e in store.read(before, before + 5)]
    finally:
        store.close()
    images = {}
    for entry in logged:
        assert isinstance(entry, ObservationEntry)
        images[entry.mesa] = entry.image
    pdf = hashlib.sha256((folder / "two-pages.pdf").read_bytes()).hexdigest()
    assert images == {
        definition.mesa_id(5): pdf,
        definition.mesa_id(6): pdf,
        definition.mesa_id(7): hashlib.sha256(first).hexdigest(),
        definition.mesa_id(8): hashlib.sha256(second).hexdigest(),
        definition.mesa_id(9): hashlib.sha256((folder / "scan#page=1.jpg").read_bytes()).hexdigest(),
    }


def test_a_service_without_witnesses_refuses_observations_before_reading_them(
    election: Election, server: LiveServer
) -> None:
    image = b"\xff\xd8\xff" + bytes(1000)
    status, body = _upload(server, _observation(election, 3, image), image)
    assert (status, body["code"]) == (403, "unenrolled-key")
    assert "--witness" in str(body["detail"])
