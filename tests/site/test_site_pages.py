"""Site pages in cases the simulated single-contest election does not reach: two contests with a witness copy,
cosigned checkpoints, hostile text in the definition, and files altered on disk between publications."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from actas.core.election import Election
from actas.core.entries import enroll_entry, observation_entry
from actas.core.keys import Signer, Verifier
from actas.core.note import cosign_checkpoint, open_checkpoint
from actas.core.qr import encode_payload
from actas.log.writer import LogWriter
from actas.publish.bundle import publish_bundle
from actas.publish.pages import script_json
from actas.simulate.geography import generate_value
from actas.simulate.run import create_data_dir, derive_seed, device_signer, signed_actas
from actas.storage.blobs import FileBlobStore
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore

SEED = 9
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"generated test image"


def _two_contests(root: Path, origin: str = "results.example.org/two") -> tuple[DataDir, Election]:
    """40 mesas, contests presidente and gobernador, every acta logged, one witness copy of mesa 0's presidente."""
    value = generate_value(40, SEED, origin)
    second = dict(value["contests"][0], id="gobernador", name="Gobernación")
    value["contests"].append(second)
    election = Election.from_value(value)
    authority = Signer(election.origin, derive_seed(SEED, "authority"))
    data = create_data_dir(root, election, authority)
    writer = LogWriter(SqliteLogStore(data.database), data.log, election, authority, workers=0)
    try:
        writer.bootstrap()
        writer.append(
            [
                enroll_entry(election.origin, device_signer(SEED, i).verifier, [election.mesa_id(i)], authority)
                for i in range(election.mesa_count)
            ]
        )
        first: bytes = b""
        for contest_id in ("presidente", "gobernador"):
            batch = list(signed_actas(election, SEED, contest_id))
            first = first or batch[0]
            writer.append(batch)
        digest = FileBlobStore(data.images).put(PNG)
        witness = Signer("observers.example/w1", hashlib.sha256(b"w1").digest())
        payload = encode_payload(first)
        writer.append([observation_entry(election.origin, election.mesa_id(0), "actas1", digest, payload, witness)])
    finally:
        writer.close()
    return data, election


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> tuple[DataDir, Election, Path]:
    root = tmp_path_factory.mktemp("two")
    data, election = _two_contests(root / "data")
    publish_bundle(data, root / "site")
    return data, election, root / "site"


def test_witness_copies_are_counted_for_their_own_contest(two: tuple[DataDir, Election, Path]) -> None:
    _, election, site = two
    national = (site / "en" / "index.html").read_text(encoding="utf-8")
    copies = dict(re.findall(r'data-contest="([^"]+)".*?data-field="copies">([^<]*)<', national, re.S))
    assert copies == {"presidente": "1", "gobernador": "0"}
    values = json.loads((site / "data" / "areas" / "national.json").read_bytes())
    assert [c["witness_copies"] for c in values["contests"]] == [1, 0]
    mesa = (site / "en" / "mesa" / f"{election.mesa_id(0)}.html").read_text(encoding="utf-8")
    assert mesa.count("The witness copies match the official acta.") == 1
    assert mesa.count("No witness copy of this acta has been logged.") == 1
    assert '<img src="../../images/' in mesa  # a PNG is shown


def test_the_national_page_names_the_checkpoint_and_its_cosignatures(
    two: tuple[DataDir, Election, Path], tmp_path: Path
) -> None:
    data, _, site = two
    plain = (site / "en" / "index.html").read_text(encoding="utf-8")
    assert "No witness had cosigned this checkpoint" in plain
    witness = Signer("observers.example/w1", hashlib.sha256(b"w1").digest())
    checkpoint = open_checkpoint(data.checkpoint.read_bytes(), Verifier.parse(data.authority_vkey.read_text().strip()))
    line = cosign_checkpoint(checkpoint, witness, 1_780_000_000)
    store = SqliteLogStore(data.database)
    try:
        store.add_cosignature(checkpoint.size, checkpoint.root_hash, witness.name, line.line())
    finally:
        store.close()
    publish_bundle(data, tmp_path / "site")
    page = (tmp_path / "site" / "en" / "index.html").read_text(encoding="utf-8")
    assert "Cosigned by witnesses: 1; latest cosignature 2026-05-28 20:26 UTC." in page


def test_script_json_cannot_end_or_comment_out_its_script() -> None:
    text = str(script_json({"origin": "evil.example/x<!--<script></script>&"}))
    for character in "<>&":
        assert character not in text
    assert json.loads(text) == {"origin": "evil.example/x<!--<script></script>&"}


def test_republishing_repairs_a_file_altered_on_disk(two: tuple[DataDir, Election, Path], tmp_path: Path) -> None:
    data, election, _ = two
    site = tmp_path / "site"
    publish_bundle(data, site)
    page = site / "es" / "mesa" / f"{election.mesa_id(1)}.html"
    original = page.read_bytes()
    page.write_bytes(b"junk")
    tile = next(p for p in (site / "log" / "tile" / "0").rglob("*") if p.is_file())
    tile_bytes = tile.read_bytes()
    tile.write_bytes(bytes(32) + tile_bytes[32:])
    summary = publish_bundle(data, site)
    assert page.read_bytes() == original
    assert tile.read_bytes() == tile_bytes
    assert summary.written == 2


def test_the_data_page_documents_every_contests_columns_in_its_language(two: tuple[DataDir, Election, Path]) -> None:
    _, _, site = two
    spanish = (site / "es" / "data.html").read_text(encoding="utf-8")
    assert spanish.count("Votos en la posición 1 de la boleta") == 2  # presidente and gobernador
    assert "data/actas-gobernador.csv" in spanish
    assert "Leaf index" not in spanish
    portuguese = (site / "pt" / "data.html").read_text(encoding="utf-8")
    assert "Votos na posição 1 da cédula" in portuguese


def test_every_page_has_the_policy_and_every_table_a_caption(two: tuple[DataDir, Election, Path]) -> None:
    _, _, site = two
    pages = [site / "index.html", *sorted(site.glob("*/*.html")), *sorted(site.glob("*/area/*.html"))]
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert 'http-equiv="Content-Security-Policy"' in html, page
        assert html.count("<table") == html.count("<caption>"), page
