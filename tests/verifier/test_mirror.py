"""`actas mirror-check`: a removed, an added and an altered file are each named; a forged MANIFEST is refused."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actas.core.keys import Signer, Verifier
from actas.core.manifest import MANIFEST, MANIFEST_NOTE, manifest_bytes, parse_manifest, sign_manifest
from actas.errors import ActasError, MalformedError
from actas.publish.bundle import publish_bundle
from actas.simulate.run import simulate
from actas.storage.layout import DataDir
from actas.verifier.mirror import check_mirror
from tests.factories import seed
from tests.service.witnesses import static_mirror

MESAS = 40


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[DataDir, Path, Verifier]:
    root = tmp_path_factory.mktemp("mirror")
    summary = simulate(root / "data", MESAS, 5)
    publish_bundle(summary.data, root / "bundle")
    key = Verifier.parse(summary.data.authority_vkey.read_text(encoding="utf-8").strip())
    return summary.data, root / "bundle", key


@pytest.fixture
def mirror(published: tuple[DataDir, Path, Verifier], tmp_path: Path) -> Path:
    copy = tmp_path / "mirror"
    shutil.copytree(published[1], copy)
    return copy


def test_an_intact_copy_passes_and_the_manifest_lists_every_file(
    published: tuple[DataDir, Path, Verifier], mirror: Path
) -> None:
    report = check_mirror(str(mirror), published[2], workers=1)
    assert report.ok, report
    files = {p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file()}
    assert set(parse_manifest((mirror / MANIFEST).read_bytes())) == files - {MANIFEST, MANIFEST_NOTE}
    assert report.manifest is not None
    assert report.log is not None
    assert report.manifest.size == report.log.size


def test_removed_added_and_altered_files_are_each_named(
    published: tuple[DataDir, Path, Verifier], mirror: Path
) -> None:
    (mirror / "results" / "presidente" / "estado.json").unlink()
    (mirror / "log" / "notes.txt").write_text("not published by the authority\n")
    altered = mirror / "keys" / "authority.vkey"
    altered.write_bytes(altered.read_bytes().replace(b"\n", b" \n"))
    report = check_mirror(str(mirror), published[2], workers=1)
    assert not report.ok
    assert report.missing == ["results/presidente/estado.json"]
    assert report.extra == ["log/notes.txt"]
    assert report.altered == ["keys/authority.vkey"]


def test_an_altered_manifest_or_a_note_by_another_key_is_refused(
    published: tuple[DataDir, Path, Verifier], mirror: Path
) -> None:
    manifest = mirror / MANIFEST
    original = manifest.read_bytes()
    manifest.write_bytes(original.replace(b"election.json", b"election.jsom"))
    report = check_mirror(str(mirror), published[2], workers=1)
    assert not report.ok
    assert report.manifest_error is not None
    assert "differs" in report.manifest_error
    manifest.write_bytes(original)
    stranger = Signer(published[2].name, seed("not the authority"))
    (mirror / MANIFEST_NOTE).write_bytes(sign_manifest(published[2].name, "0" * 64, 1, stranger))
    report = check_mirror(str(mirror), published[2], workers=1)
    assert not report.ok
    assert report.manifest_error is not None
    assert "known key" in report.manifest_error


def test_over_http_missing_and_altered_files_are_named_and_extras_are_not_claimed(
    published: tuple[DataDir, Path, Verifier], mirror: Path
) -> None:
    (mirror / "election.json").write_bytes((mirror / "election.json").read_bytes() + b" ")
    (mirror / "results" / "presidente" / "national.json").unlink()
    with static_mirror(mirror) as url:
        report = check_mirror(url, published[2], workers=1)
    assert report.altered == ["election.json"]
    assert report.missing == ["results/presidente/national.json"]
    assert not report.extra_checked
    assert not report.ok


def test_publishing_twice_gives_the_same_manifest(published: tuple[DataDir, Path, Verifier], tmp_path: Path) -> None:
    data, bundle, _ = published
    publish_bundle(data, tmp_path / "again")
    for name in (MANIFEST, MANIFEST_NOTE):
        assert (tmp_path / "again" / name).read_bytes() == (bundle / name).read_bytes()


_PATH = st.lists(st.text(st.characters(codec="utf-8", categories=("L", "N", "P")), min_size=1, max_size=8), min_size=1)


@given(st.dictionaries(_PATH.map("/".join), st.binary(min_size=32, max_size=32).map(bytes.hex), max_size=8))
def test_manifest_round_trips_or_refuses_a_path(files: dict[str, str]) -> None:
    try:
        data = manifest_bytes(files.items())
    except MalformedError:
        return
    assert parse_manifest(data) == files


@given(st.binary(max_size=300))
def test_arbitrary_manifest_bytes_parse_or_raise_the_project_error(data: bytes) -> None:
    with contextlib.suppress(ActasError):
        parse_manifest(data)


def test_a_manifest_signed_for_another_checkpoint_size_is_refused(
    published: tuple[DataDir, Path, Verifier], mirror: Path
) -> None:
    data, _, key = published
    authority = Signer.parse(data.authority_key.read_text(encoding="utf-8").strip())
    digest = hashlib.sha256((mirror / MANIFEST).read_bytes()).hexdigest()
    (mirror / MANIFEST_NOTE).write_bytes(sign_manifest(key.name, digest, 1, authority))
    report = check_mirror(str(mirror), key, workers=1)
    assert not report.ok
    assert report.manifest_error is not None
    assert "checkpoint size 1" in report.manifest_error
