"""The Brazilian boletim de urna QR codes: parts, the SHA-512 hash chain, content structure, refusals, fuzzing.

The boletins here are synthetic: realistic field sets for versions 1.4, 1.5 and 6.0 whose hash chain and
Ed25519 signature are computed in the test itself, independently of the module under test.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from actas.core.qr_qrbu import (
    Boletim,
    QrbuPart,
    assemble,
    format_part,
    parse_part,
    public_key_path,
    signature_valid,
)
from actas.errors import KeyFormatError, MalformedError, SignatureError

KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"actas-tests/tse-qrcode-key").digest())
PUBLIC = KEY.public_key().public_bytes_raw()
OTHER = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"actas-tests/other-key").digest())


def records(text: str) -> list[str]:
    """Records written as they are printed, one space apart."""
    return text.split(" ")


HEADER = records(
    "ORIG:VOTA ORLC:LEG PROC:406 DTPL:20221002 PLEI:407 TURN:1 FASE:O UNFE:SP MUNI:71072 ZONA:0001 SECA:0123 "
    "AGRE:124.125 IDUE:2034567 IDCA:123456789012345678901234 VERS:8.26.0.0 LOCA:1015 APTO:400 COMP:300 "
    "FALT:100 HBMA:0 DTAB:20221002 HRAB:080000 DTFC:20221002 HRFC:170012"
)
ELECTION_A = records(
    "IDEL:545 "
    "CARG:6 TIPO:1 VERC:202208121234 PART:11 1101:10 1102:5 LEGP:4 TOTP:19 PART:22 2201:30 LEGP:6 TOTP:36 "
    "APTA:400 NOMI:45 LEGC:10 BRAN:5 NULO:10 TOTC:70 "
    "CARG:7 TIPO:1 VERC:202208121234 PART:11 11111:20 LEGP:2 TOTP:22 PART:13 13013:40 LEGP:3 TOTP:43 "
    "APTA:400 NOMI:60 LEGC:5 BRAN:3 NULO:2 TOTC:70 "
    "CARG:5 TIPO:0 VERC:202208121234 111:50 222:60 APTA:400 NOMI:110 BRAN:20 NULO:10 TOTC:140 "
    "CARG:3 TIPO:0 VERC:202208121234 11:30 22:35 APTA:400 NOMI:65 BRAN:3 NULO:2 TOTC:70"
)
ELECTION_B = records("IDEL:544 CARG:1 TIPO:0 VERC:202208121234 13:33 22:31 APTA:400 NOMI:64 BRAN:4 NULO:2 TOTC:70")
RECORDS = HEADER + ELECTION_A + ELECTION_B
SPLITS = (30, 60)  # three parts: the header and CARG 6 start in part 1


def chain(datas: list[str]) -> list[str]:
    """The TSE hash chain: HASH₁ = SHA-512(data₁); HASHᵢ covers everything before it plus dataᵢ."""
    hashes: list[str] = []
    covered = ""
    for data in datas:
        covered = f"{covered} {data}" if covered else data
        digest = hashlib.sha512(covered.encode("ascii")).hexdigest().upper()
        hashes.append(digest)
        covered += f" HASH:{digest}"
    return hashes


def build(
    content: list[str],
    splits: tuple[int, ...] = SPLITS,
    version: str = "1.5",
    vrch: str | None = "20220829",
    signer: Ed25519PrivateKey | None = KEY,
) -> list[str]:
    """The QR texts of a BU: records split into parts, hashes chained, the last hash signed."""
    bounds = [0, *splits, len(content)]
    datas = [" ".join(content[a:b]) for a, b in itertools.pairwise(bounds)]
    texts = []
    for i, (data, digest) in enumerate(zip(datas, chain(datas), strict=True)):
        head = f"QRBU:{i + 1}:{len(datas)} VRQR:{version}" + (f" VRCH:{vrch}" if vrch else "")
        text = f"{head} {data} HASH:{digest}"
        if i == len(datas) - 1 and signer is not None:
            text += " ASSI:" + signer.sign(bytes.fromhex(digest)).hex().upper()
        texts.append(text)
    return texts


def read(texts: list[str]) -> Boletim:
    """Parse and assemble."""
    return assemble(parse_part(t) for t in texts)


PARTS = build(RECORDS)


def test_a_15_boletim_in_three_parts_parses_every_field() -> None:
    """Every record comes back in order, with identification, cargos, votes and summaries."""
    parts = [parse_part(t) for t in PARTS]
    assert [(p.index, p.count, p.version, p.key_version) for p in parts] == [
        (i, 3, "1.5", "20220829") for i in (1, 2, 3)
    ]
    assert [p.signature is None for p in parts] == [True, True, False]
    boletim = assemble([parts[2], parts[0], parts[1]])  # scanning order does not matter
    assert boletim.fields == tuple(tuple(r.split(":", 1)) for r in RECORDS)
    assert (boletim.version, boletim.key_version) == ("1.5", "20220829")
    assert (boletim.uf, boletim.municipality, boletim.zone, boletim.section) == ("SP", "71072", "0001", "0123")
    assert boletim.mesa_id == "71072.0001.0123"
    assert boletim.apt == 400
    assert boletim.get("AGRE") == "124.125"
    assert boletim.get("IDCA") == "123456789012345678901234"
    assert boletim.get("NOPE") is None
    assert boletim.hashes == tuple(p.hash for p in parts) == tuple(chain([p.data for p in parts]))
    assert [(c.election, c.code, c.kind) for c in boletim.cargos] == [
        ("545", "6", 1),
        ("545", "7", 1),
        ("545", "5", 0),
        ("545", "3", 0),
        ("544", "1", 0),
    ]
    federal = boletim.cargo("6")
    assert federal is not None
    assert federal.votes == (("1101", 10), ("1102", 5), ("2201", 30))
    assert federal.party_votes == (("11", 4), ("22", 6))
    assert (federal.apt, federal.blank, federal.null, federal.total("TOTC"), federal.total("LEGC")) == (
        400,
        5,
        10,
        70,
        10,
    )
    senate = boletim.cargo("5", election="545")
    assert senate is not None
    assert (senate.votes, senate.party_votes, senate.total("TOTC")) == ((("111", 50), ("222", 60)), (), 140)
    president = boletim.cargo("1")
    assert president is not None
    assert (president.election, president.votes, president.blank, president.null) == (
        "544",
        (("13", 33), ("22", 31)),
        4,
        2,
    )
    assert boletim.cargo("1", election="545") is None


def test_parts_format_back_to_the_printed_text() -> None:
    """format_part is the inverse of parse_part on real-shaped parts."""
    assert [format_part(parse_part(t)) for t in PARTS] == PARTS


def test_the_signature_verifies_under_the_tse_key_only() -> None:
    """ASSI is Ed25519 over the last hash's 64 bytes; another key, or no key at all, does not verify it."""
    boletim = read(PARTS)
    assert signature_valid(boletim, PUBLIC)
    assert not signature_valid(boletim, OTHER.public_key().public_bytes_raw())
    with pytest.raises(KeyFormatError):
        signature_valid(boletim, PUBLIC[:31])
    forged = build(RECORDS, signer=OTHER)
    assert not signature_valid(read(forged), PUBLIC)


def test_the_key_that_signs_a_15_boletim_is_named() -> None:
    """VRCH, ORLC, FASE and UNFE name the published key file."""
    assert public_key_path(read(PARTS)) == "20220829/LEGAL/osp" + "qrcode.pub"


def test_a_14_boletim_parses() -> None:
    """Version 1.4 has no VRCH; one part carries HASH and ASSI."""
    texts = build(RECORDS, splits=(), version="1.4", vrch=None)
    assert texts[0].startswith("QRBU:1:1 VRQR:1.4 ORIG:VOTA ")
    boletim = read(texts)
    assert (boletim.version, boletim.key_version, boletim.mesa_id) == ("1.4", None, "71072.0001.0123")
    assert len(boletim.cargos) == 5
    assert signature_valid(boletim, PUBLIC)
    with pytest.raises(MalformedError, match=r"1\.5"):
        public_key_path(boletim)


def test_a_60_boletim_parses_but_its_signature_is_not_verified_here() -> None:
    """6.0 chains hashes the same way; its urna-certificate signature is refused as unverifiable."""
    texts = build(RECORDS, version="6.0", vrch=None, signer=None)
    texts[-1] += " ASSI:" + "AB" * 132  # an E-521 signature is 132 bytes
    boletim = read(texts)
    assert boletim.version == "6.0"
    with pytest.raises(SignatureError, match=r"6\.0"):
        signature_valid(boletim, PUBLIC)


def _swap(texts: list[str], old: str, new: str, part: int) -> list[str]:
    changed = list(texts)
    assert old in changed[part]
    changed[part] = changed[part].replace(old, new, 1)
    return changed


@pytest.mark.parametrize(
    ("texts", "reason"),
    [
        (_swap(PARTS, " 1101:10 ", " 1101:11 ", 0), "part 1 of 3: HASH does not match"),
        (_swap(PARTS, " 13:33 ", " 13:3 ", 2), "part 3 of 3: HASH does not match"),
        (_swap(_swap(PARTS, "QRBU:1:3", "QRBU:2:3", 0), "QRBU:2:3", "QRBU:1:3", 1), "part 1 of 3: HASH does not match"),
        (PARTS[:2], "part 3 of 3 is missing"),
        ([PARTS[0], PARTS[2]], "part 2 of 3 is missing"),
        ([*PARTS, PARTS[1]], "part 2 of 3 given twice"),
        (_swap(PARTS, PARTS[1][-128:], chain(["X"])[0], 1), "part 2 of 3: HASH does not match"),
        ([PARTS[0], PARTS[1], build(RECORDS, splits=(), version="1.4", vrch=None)[0]], "does not belong"),
        ([PARTS[0], PARTS[1], PARTS[2].split(" ASSI:")[0]], "carries no ASSI"),
        ([], "no parts"),
    ],
)
def test_damaged_or_incomplete_boletins_are_refused(texts: list[str], reason: str) -> None:
    """A changed count, swapped or missing parts, a wrong hash, a foreign part or a missing ASSI are refused."""
    with pytest.raises(MalformedError, match=reason):
        read(texts)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ([*HEADER[:10], "ZONA:0002", *HEADER[10:], *ELECTION_A], "duplicate key ZONA"),
        ([*HEADER, *ELECTION_A[:4], "1101:1", *ELECTION_A[4:]], "duplicate key 1101"),
        ([*HEADER, *ELECTION_A, *ELECTION_A[1:17]], "duplicate key CARG:6"),
        ([*HEADER, *ELECTION_A, *ELECTION_A], "duplicate key IDEL:545"),
        ([*HEADER, *ELECTION_A[:5], "PART:11", *ELECTION_A[5:]], "party 11 repeated"),
        ([*HEADER, "13:5", *ELECTION_A], "before any CARG"),
        ([*HEADER, "IDEL:1", "APTA:4", *ELECTION_A[1:]], "between IDEL and CARG"),
        ([*HEADER, *ELECTION_A, "XPTO:1"], "unknown key XPTO"),
        ([*HEADER, *ELECTION_A, "CARG:9", "APTA:1"], "cargo 9 has no TIPO"),
        ([*HEADER, *ELECTION_A, "CARG:9", "TIPO:3"], "TIPO:3"),
        ([*HEADER, *ELECTION_A, "CARG:9", "TIPO:0", "LEGP:1"], "LEGP outside a PART"),
        ([*HEADER, *ELECTION_A, "CARG:9", "TIPO:0", "13:010"], "not a count"),
        ([*HEADER, *ELECTION_A, "CARG:X1", "TIPO:0"], "CARG:X1 is not a number"),
        ([r for r in HEADER if not r.startswith("SECA")] + ELECTION_A, "SECA missing"),
        ([r if r != "UNFE:SP" else "UNFE:S" for r in HEADER] + ELECTION_A, "UNFE missing or malformed"),
    ],
)
def test_content_breaking_the_structure_is_refused(content: list[str], reason: str) -> None:
    """With a correct hash chain, duplicated keys and misplaced records are still refused by name."""
    with pytest.raises(MalformedError, match=reason):
        read(build(content))


VALID = PARTS[0]
HASH_AT = VALID.index(" HASH:") + 1
SIGNED = build(RECORDS, splits=())[0]


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        (VALID.replace("QRBU:1:3", "QRBU:0:3"), 5, "1-2 digits without leading zero"),
        (VALID.replace("QRBU:1:3", "QRBU:01:3"), 5, "without leading zero"),
        (VALID.replace("QRBU:1:3", "QRBU:4:3"), 5, "part 4 of 3"),
        (VALID.replace("QRBU:1:3", "QRBX:1:3"), 0, "must start with QRBU"),
        (VALID.replace("QRBU:1:3", "QRBU:1:3:1"), 0, "must start with QRBU"),
        (VALID.replace("VRQR:1.5", "VRQR:9.9"), 14, "unsupported version '9.9'"),
        (VALID.replace("VRQR:1.5", "VRQX:1.5"), 9, "VRQR:<version> must follow"),
        (VALID.replace(" VRCH:20220829", ""), 18, "1.5 needs VRCH"),
        (VALID.replace("VRQR:1.5", "VRQR:1.4"), 18, "version 1.4 has no VRCH"),
        (VALID.replace("VRCH:20220829", "VRCH:2022"), 23, "VRCH must be 8 digits"),
        (VALID.replace(" ORIG:", "  ORIG:"), 32, "empty record"),
        (VALID + " ", len(VALID) + 1, "empty record"),
        (VALID.replace("ORIG:VOTA", "ORIG:Vota"), 38, "'o' is outside the QR alphanumeric set"),
        (VALID.replace("ORIG:VOTA", "ORIG:VOT\u00c1"), 40, "outside the QR alphanumeric set"),
        (VALID.replace("ORIG:VOTA", "ORIGVOTA"), 32, "not a KEY:value record"),
        (VALID.replace("ORIG:VOTA", "ORIGE:VOTA"), 32, "not a KEY:value record"),
        (VALID.replace("ORIG:VOTA", "ORIG:"), 37, "ORIG has an empty value"),
        (VALID.replace("ORIG:VOTA", "VRQR:1.5"), 32, "VRQR belongs to the header"),
        (VALID.split(" HASH:")[0], len(VALID.split(" HASH:")[0]), "missing HASH"),
        (VALID[:-1], HASH_AT + 5, "HASH must be 128"),
        (VALID[:-1] + "G", HASH_AT + 5, "HASH must be 128"),
        (VALID + " ASSI:" + "AB" * 64, len(VALID) + 1, "only the last part"),
        (SIGNED + " ASSI:AB", len(SIGNED) + 1, "trailing data after HASH"),
        (SIGNED.rsplit(" ASSI:")[0] + " ASSI:" + "AB" * 32, len(SIGNED) - 128, "not upper-case hex"),
        (SIGNED.rsplit(" ASSI:")[0] + " XPTO:1", len(SIGNED) - 133, "trailing data after HASH"),
        ("QRBU:1:1 VRQR:1.4 HASH:" + "A" * 128, 18, "no records before HASH"),
        ("QRBU:1:1", 9, "VRQR:<version> must follow"),
        ("", 0, "empty text"),
        ("X" * 4297, 4296, "longer than the 4296"),
    ],
)
def test_malformed_parts_are_refused_with_position(text: str, position: int, reason: str) -> None:
    """Header, records and trailer are checked strictly; the message names where and why."""
    with pytest.raises(MalformedError, match=rf"^qrbu part at {position}: .*{reason}"):
        parse_part(text)


@pytest.mark.parametrize(
    "change",
    [
        {"index": 0},
        {"index": 4},
        {"version": "1.6"},
        {"key_version": None},
        {"fields": ()},
        {"fields": (("orig", "VOTA"),)},
        {"fields": (("HASH", "A"),)},
        {"hash": "a" * 128},
        {"signature": "AB" * 64},
    ],
)
def test_parts_are_valid_by_construction(change: dict[str, object]) -> None:
    """A QrbuPart cannot hold what the parser would refuse."""
    part = parse_part(VALID)
    fields = {f: getattr(part, f) for f in ("index", "count", "version", "key_version", "fields", "hash", "signature")}
    with pytest.raises(MalformedError):
        QrbuPart(**{**fields, **change})


_key = st.one_of(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4).filter(
        lambda k: k not in {"QRBU", "VRQR", "VRCH", "HASH", "ASSI"}
    ),
    st.text(alphabet="0123456789", min_size=1, max_size=9),
)
_value = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$%*+-./:", min_size=1, max_size=12)
_hex = st.binary(min_size=64, max_size=64).map(lambda b: b.hex().upper())


@st.composite
def parts(draw: st.DrawFn) -> QrbuPart:
    """Any valid part."""
    count = draw(st.integers(1, 99))
    index = draw(st.integers(1, count))
    version = draw(st.sampled_from(["1.4", "1.5", "6.0"]))
    key_version = draw(st.text(alphabet="0123456789", min_size=8, max_size=8)) if version == "1.5" else None
    fields = tuple(draw(st.lists(st.tuples(_key, _value), min_size=1, max_size=20)))
    signature = draw(st.one_of(st.none(), _hex)) if index == count else None
    return QrbuPart(index, count, version, key_version, fields, draw(_hex), signature)


@given(parts())
def test_format_and_parse_round_trip(part: QrbuPart) -> None:
    """Every valid part formats to text that parses back to the same part."""
    assert parse_part(format_part(part)) == part


@given(
    st.one_of(
        st.text(),
        st.text(alphabet="QRBUVCHASI0123456789: .-", max_size=60).map(lambda t: "QRBU:1:1 VRQR:1.4 " + t),
        st.text(alphabet="ABCDEF0123456789: ", max_size=200).map(lambda t: f"QRBU:1:1 VRQR:1.4 ORIG:VOTA HASH:{t}"),
    )
)
def test_arbitrary_text_parses_or_raises_malformed(text: str) -> None:
    """Fuzz: parse_part never lets anything but MalformedError escape, and what parses is canonical."""
    try:
        part = parse_part(text)
    except MalformedError:
        return
    assert format_part(part) == text


@given(st.integers(0, len(SIGNED) - 1), st.sampled_from(sorted(set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:é"))))
def test_one_character_changes_parse_or_raise_malformed(position: int, char: str) -> None:
    """Fuzz around a signed one-part BU: a changed character is refused by the parser or the hash chain."""
    text = SIGNED[:position] + char + SIGNED[position + 1 :]
    try:
        boletim = read([text])
    except MalformedError:
        return
    if text == SIGNED:
        return
    # Only the header and the signature are outside the hash chain: a changed VRCH names another key (and
    # so fails there), a changed signature does not verify.
    vrch = SIGNED.index("VRCH:") + 5
    if vrch <= position < vrch + 8:
        assert boletim.key_version != "20220829"
    else:
        assert position >= SIGNED.index(" ASSI:") + 6
        assert not signature_valid(boletim, PUBLIC)
