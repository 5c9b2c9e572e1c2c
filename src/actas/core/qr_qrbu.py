"""The QR codes of a Brazilian boletim de urna (BU): parts parsed strictly, assembled, hash chain checked.

Sources followed: the TSE's "QR Code no Boletim de Urna — Manual para criação de aplicativos de leitura"
(editions 2018 and 2024, format versions 1.4/1.5) as summarised by open-source readers, and the urna's own
generator (``CGeradorBUQRCode``) as reconstructed from the 2026 voting software (format 6.0). The hash chain
below was checked against a BU of the TSE's published 2018 examples (two parts, VRQR 1.5).

One part (one QR code), every character in the QR alphanumeric set, records separated by one space::

    part    = "QRBU:" i ":" n " VRQR:" version [" VRCH:" 8DIGIT] " " records " HASH:" 128HEX [" ASSI:" HEX]
    records = record *(" " record)
    record  = key ":" value
    key     = 4UPPER / 1*9DIGIT           ; a field name, or a candidate / party / answer number
    value   = 1*(DIGIT / UPPER / "$" / "%" / "*" / "+" / "-" / "." / "/" / ":")

``i`` of ``n`` (1–2 digits, no leading zero, 1 ≤ i ≤ n); ``version`` ``1.4``, ``1.5`` or ``6.0``;
``VRCH`` (the version of the TSE key that signs, a date ``YYYYMMDD``) is present in 1.5 only. ``HASH`` is 128
upper-case hex digits; ``ASSI`` only in the last part (128 hex digits, an Ed25519 signature, in 1.x; up to 512
in 6.0). The BU's content is cut between records into parts of at most about 1,100 characters.

**Hash chain** (SHA-512, upper-case hex). With ``dataᵢ`` the records of part i as printed (header and trailer
excluded): ``HASH₁ = SHA-512(data₁)`` and ``HASHᵢ = SHA-512(data₁ + " HASH:" + HASH₁ + " " + data₂ + … + " " +
dataᵢ)``: each hash covers its part's content and everything before it, including the previous hashes. The
header (``QRBU``, ``VRQR``, ``VRCH``) is not covered: a changed ``VRCH`` only names another key.

**Content.** An identification header (``ORIG ORLC PROC DTPL PLEI TURN FASE UNFE MUNI ZONA SECA [AGRE] IDUE
IDCA … APTO COMP FALT DTAB HRAB DTFC HRFC``, each key once), then per election ``IDEL:<id>`` and per cargo
(office) ``CARG:<code> TIPO:<0 majoritarian | 1 proportional | 2 referendum> VERC:<version>``, its votes
``<number>:<votes>`` (proportional cargos group them in ``PART:<party> … LEGP:<party-list votes> TOTP:<total>``
blocks) and its summary ``APTA`` (apt electorate), ``NOMI``, ``LEGC``, ``BRAN`` (blank), ``NULO`` (null),
``TOTC``. :func:`assemble` refuses a duplicated key in the header, a duplicated election, cargo, party or
candidate, a vote before any ``CARG`` and an unknown key inside a cargo; unknown header keys are kept (each
version added some). Counts are 1–9 ASCII digits without leading zeros; identification codes 1–9 digits
(kept as printed, zero padding included). Vote arithmetic (``TOTC = NOMI + LEGC + BRAN + NULO``) is not
checked here.

**What is verified.** The structure above, that the parts form one BU (same ``n``, version and key version,
each index exactly once, any input order) and the whole hash chain, so a changed count, a dropped or swapped
part or a part from another BU is refused. **What is not:** ``ASSI`` is only checked for its encoding. In 1.x
it is an Ed25519 signature over the 64 raw bytes of the last hash by a per-state TSE key that the payload
names but does not carry (published as ``<VRCH>/<LEGAL|COMUNITARIA>/<fase><uf>qrcode.pub``, see
:func:`public_key_path`); :func:`signature_valid` checks it when the caller supplies that key. In 6.0 the urna
signs with its own certificate (EdDSA on E-521 or ECDSA P-521, carried in separate ``QRCE`` codes); that is
not verified here. Without the signature a matching hash chain only shows internal consistency: anyone can
compute SHA-512.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from actas.core.keys import check_public_key
from actas.errors import KeyFormatError, MalformedError, SignatureError

VERSIONS = ("1.4", "1.5", "6.0")
ALPHANUMERIC = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
MAX_PART_LENGTH = 4296  # the most alphanumeric characters one QR code holds (version 40-L)
MAX_PARTS = 99
RESERVED = frozenset({"QRBU", "VRQR", "VRCH", "HASH", "ASSI"})
IDENTIFICATION = ("UNFE", "MUNI", "ZONA", "SECA")
CARGO_TOTALS = frozenset({"VERC", "APTA", "APTS", "APTT", "CSEC", "NOMI", "LEGC", "BRAN", "NULO", "TOTC"})
_KEY = re.compile(r"[A-Z]{4}|[0-9]{1,9}").fullmatch
_VALUE = re.compile(r"[0-9A-Z$%*+\-./:]+").fullmatch
_HEX128 = re.compile(r"[0-9A-F]{128}").fullmatch
_HEX = re.compile(r"(?:[0-9A-F]{2}){1,256}").fullmatch
_INDEX = re.compile(r"[1-9][0-9]?").fullmatch
_CODE = re.compile(r"[0-9]{1,9}").fullmatch
_COUNT = re.compile(r"0|[1-9][0-9]{0,8}").fullmatch
_DATE = re.compile(r"[0-9]{8}").fullmatch
Fields = tuple[tuple[str, str], ...]


def _matches(match: Callable[[str], object], value: object) -> bool:
    """A pattern test that refuses non-strings instead of raising TypeError."""
    return type(value) is str and bool(match(value))


def _is_fields(value: object) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(item, tuple) and len(item) == 2 and all(type(text) is str for text in item) for item in value
    )


def _signature_ok(version: str, signature: object) -> bool:
    return _matches(_HEX, signature) and (version == "6.0" or len(str(signature)) == 128)


@dataclass(frozen=True, slots=True)
class QrbuPart:
    """One QR code of a BU: header, the records exactly as written, its HASH and (last part only) ASSI."""

    index: int
    count: int
    version: str
    key_version: str | None
    fields: Fields
    hash: str
    signature: str | None = None

    def __post_init__(self) -> None:
        if type(self.index) is not int or type(self.count) is not int or not 1 <= self.index <= self.count <= MAX_PARTS:
            raise MalformedError(f"qrbu part: index {self.index!r} of {self.count!r} is not 1 ≤ i ≤ n ≤ {MAX_PARTS}")
        if self.version not in VERSIONS:
            raise MalformedError(f"qrbu part: unsupported version {self.version!r}")
        if (self.version == "1.5") != (self.key_version is not None) or (
            self.key_version is not None and not _matches(_DATE, self.key_version)
        ):
            raise MalformedError("qrbu part: VRCH (8 digits) is required in version 1.5 and absent otherwise")
        if not _is_fields(self.fields) or not self.fields:
            raise MalformedError("qrbu part: records must be a non-empty tuple of (key, value) strings")
        for key, value in self.fields:
            if not _KEY(key) or key in RESERVED or not _VALUE(value):
                raise MalformedError(f"qrbu part: record {key}:{value} breaks the record grammar")
        if not _matches(_HEX128, self.hash):
            raise MalformedError("qrbu part: HASH must be 128 upper-case hex digits")
        if self.signature is not None and (self.index != self.count or not _signature_ok(self.version, self.signature)):
            raise MalformedError("qrbu part: ASSI must be upper-case hex of the right length, in the last part only")

    @property
    def data(self) -> str:
        """The records as printed: the text this part's hash covers."""
        return " ".join(f"{key}:{value}" for key, value in self.fields)


def _fail(position: int, reason: str) -> MalformedError:
    return MalformedError(f"qrbu part at {position}: {reason}")


def _tokens(text: str) -> list[tuple[int, str]]:
    tokens: list[tuple[int, str]] = []
    start = 0
    for piece in text.split(" "):
        if not piece:
            raise _fail(start, "empty record (a doubled, leading or trailing space)")
        tokens.append((start, piece))
        start += len(piece) + 1
    return tokens


def _header(tokens: list[tuple[int, str]]) -> tuple[int, int, str, str | None, int]:
    """Parse QRBU, VRQR and VRCH; return index, count, version, key version and the next token's index."""
    at, first = tokens[0]
    pieces = first.split(":")
    if len(pieces) != 3 or pieces[0] != "QRBU":
        raise _fail(at, "must start with QRBU:<i>:<n>")
    if not _INDEX(pieces[1]) or not _INDEX(pieces[2]):
        raise _fail(at + 5, "part index and count must be 1-2 digits without leading zero")
    index, count = int(pieces[1]), int(pieces[2])
    if index > count:
        raise _fail(at + 5, f"part {index} of {count}")
    if len(tokens) < 2 or not tokens[1][1].startswith("VRQR:"):
        raise _fail(len(first) + 1, "VRQR:<version> must follow QRBU")
    at, token = tokens[1]
    version = token[5:]
    if version not in VERSIONS:
        raise _fail(at + 5, f"unsupported version {version!r} (known: {', '.join(VERSIONS)})")
    key_version: str | None = None
    has_vrch = len(tokens) > 2 and tokens[2][1].startswith("VRCH:")
    if version == "1.5" and not has_vrch:
        raise _fail(at + len(token) + 1, "version 1.5 needs VRCH:<YYYYMMDD> after VRQR")
    if has_vrch:
        at, token = tokens[2]
        if version != "1.5":
            raise _fail(at, f"version {version} has no VRCH")
        key_version = token[5:]
        if not _DATE(key_version):
            raise _fail(at + 5, "VRCH must be 8 digits")
    return index, count, version, key_version, 3 if has_vrch else 2


def parse_part(text: str) -> QrbuPart:
    """Parse one BU QR code strictly; MalformedError names the position and reason of any fault."""
    if not isinstance(text, str):
        raise MalformedError("qrbu part: expected text")
    if len(text) > MAX_PART_LENGTH:
        raise _fail(MAX_PART_LENGTH, f"longer than the {MAX_PART_LENGTH} characters a QR code holds")
    if not text:
        raise _fail(0, "empty text; a part starts with QRBU:<i>:<n>")
    for i, char in enumerate(text):
        if char not in ALPHANUMERIC:
            raise _fail(i, f"{char!r} is outside the QR alphanumeric set")
    tokens = _tokens(text)
    index, count, version, key_version, next_token = _header(tokens)
    fields: list[tuple[str, str]] = []
    rest = iter(tokens[next_token:])
    for at, token in rest:
        key, colon, value = token.partition(":")
        if key == "HASH":
            break
        if not colon or not _KEY(key):
            raise _fail(at, f"{token[:20]!r} is not a KEY:value record")
        if key in RESERVED:
            raise _fail(at, f"{key} belongs to the header or trailer, not the content")
        if not value:
            raise _fail(at + len(key) + 1, f"{key} has an empty value")
        fields.append((key, value))
    else:
        raise _fail(len(text), "missing HASH:<128 hex digits>")
    if not fields:
        raise _fail(at, "no records before HASH")
    if not _HEX128(value):
        raise _fail(at + 5, "HASH must be 128 upper-case hex digits")
    digest, signature = value, None
    for at, token in rest:
        if signature is not None or not token.startswith("ASSI:"):
            raise _fail(at, "trailing data after HASH (only ASSI may follow)")
        signature = token[5:]
        if index != count:
            raise _fail(at, f"ASSI in part {index} of {count}; only the last part carries it")
        if not _signature_ok(version, signature):
            raise _fail(at + 5, f"ASSI is not upper-case hex of a version {version} signature")
    return QrbuPart(index, count, version, key_version, tuple(fields), digest, signature)


def format_part(part: QrbuPart) -> str:
    """The QR text of a part (what :func:`parse_part` reads back to an equal part)."""
    head = f"QRBU:{part.index}:{part.count} VRQR:{part.version}"
    if part.key_version is not None:
        head += f" VRCH:{part.key_version}"
    tail = f" HASH:{part.hash}" + (f" ASSI:{part.signature}" if part.signature is not None else "")
    return f"{head} {part.data}{tail}"


@dataclass(frozen=True, slots=True)
class BoletimCargo:
    """One cargo (office or referendum) of a BU: votes per number, party-list votes and the summary counts."""

    election: str | None
    code: str
    kind: int
    votes: tuple[tuple[str, int], ...]
    party_votes: tuple[tuple[str, int], ...]
    totals: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not _matches(_CODE, self.code) or type(self.kind) is not int or self.kind not in (0, 1, 2):
            raise MalformedError(f"qrbu cargo: code {self.code!r} and TIPO {self.kind!r} must be digits and 0-2")
        for counts in (self.votes, self.party_votes):
            if not isinstance(counts, tuple) or not all(
                isinstance(c, tuple) and len(c) == 2 and _matches(_CODE, c[0]) and type(c[1]) is int for c in counts
            ):
                raise MalformedError("qrbu cargo: votes must be (number, count) pairs")
        if not _is_fields(self.totals):
            raise MalformedError("qrbu cargo: totals must be (key, value) strings")

    def total(self, key: str) -> int | None:
        """A summary count (``APTA``, ``NOMI``, ``LEGC``, ``BRAN``, ``NULO``, ``TOTC``…) or None if absent."""
        value = dict(self.totals).get(key)
        return int(value) if value is not None and _COUNT(value) else None

    @property
    def blank(self) -> int | None:
        """Blank votes (``BRAN``)."""
        return self.total("BRAN")

    @property
    def null(self) -> int | None:
        """Null votes (``NULO``)."""
        return self.total("NULO")

    @property
    def apt(self) -> int | None:
        """Electorate apt to vote for this cargo (``APTA``)."""
        return self.total("APTA")


class _CargoBuilder:
    """Collects one cargo's records, refusing duplicates and keys a cargo cannot hold."""

    def __init__(self, election: str | None, code: str) -> None:
        self.election, self.code, self.kind = election, code, -1
        self.votes: dict[str, int] = {}
        self.parties: dict[str, dict[str, str]] = {}
        self.party: str | None = None
        self.totals: dict[str, str] = {}

    def add(self, key: str, value: str) -> None:
        where = f"cargo {self.code}"
        if key == "TIPO":
            if self.kind != -1 or value not in ("0", "1", "2"):
                raise MalformedError(f"qrbu: {where}: TIPO:{value} repeated or not 0, 1 or 2")
            self.kind = int(value)
        elif key == "PART":
            if not _CODE(value) or value in self.parties:
                raise MalformedError(f"qrbu: {where}: party {value} repeated or not a number")
            self.party, self.parties[value] = value, {}
        elif key in ("LEGP", "TOTP"):
            if self.party is None or key in self.parties[self.party]:
                raise MalformedError(f"qrbu: {where}: {key} outside a PART block or repeated")
            self.parties[self.party][key] = _count(value, key)
        elif key.isdigit():
            if key in self.votes:
                raise MalformedError(f"qrbu: {where}: duplicate key {key} (candidate voted twice)")
            self.votes[key] = int(_count(value, key))
        elif key in CARGO_TOTALS:
            if key in self.totals:
                raise MalformedError(f"qrbu: {where}: duplicate key {key}")
            self.totals[key] = value if key == "VERC" else _count(value, key)
            self.party = None
        else:
            raise MalformedError(f"qrbu: {where}: unknown key {key}")

    def build(self) -> BoletimCargo:
        if self.kind == -1:
            raise MalformedError(f"qrbu: cargo {self.code} has no TIPO")
        legp = tuple((party, int(block["LEGP"])) for party, block in self.parties.items() if "LEGP" in block)
        return BoletimCargo(
            self.election, self.code, self.kind, tuple(self.votes.items()), legp, tuple(self.totals.items())
        )


def _count(value: str, key: str) -> str:
    if not _COUNT(value):
        raise MalformedError(f"qrbu: {key}:{value} is not a count (1-9 ASCII digits, no leading zero)")
    return value


def _structure(fields: Fields) -> tuple[BoletimCargo, ...]:
    """Check the header's keys and split the rest into cargos."""
    header: set[str] = set()
    elections: set[str] = set()
    seen: set[tuple[str | None, str]] = set()
    cargos: list[BoletimCargo] = []
    current: _CargoBuilder | None = None
    election: str | None = None
    for key, value in fields:
        if key in ("IDEL", "CARG"):
            if not _CODE(value):
                raise MalformedError(f"qrbu: {key}:{value} is not a number")
            if current is not None:
                cargos.append(current.build())
                current = None
            if key == "IDEL":
                if value in elections:
                    raise MalformedError(f"qrbu: duplicate key IDEL:{value} (election listed twice)")
                elections.add(value)
                election = value
            else:
                if (election, value) in seen:
                    raise MalformedError(f"qrbu: duplicate key CARG:{value} (cargo listed twice)")
                seen.add((election, value))
                current = _CargoBuilder(election, value)
        elif current is not None:
            current.add(key, value)
        elif elections:
            raise MalformedError(f"qrbu: {key} between IDEL and CARG")
        elif key.isdigit():
            raise MalformedError(f"qrbu: vote {key}:{value} before any CARG")
        elif key in header:
            raise MalformedError(f"qrbu: duplicate key {key} in the identification header")
        else:
            header.add(key)
    if current is not None:
        cargos.append(current.build())
    return tuple(cargos)


@dataclass(frozen=True, slots=True)
class Boletim:
    """A whole BU: its version, every record in order, the cargos, the hash chain and the signature (hex)."""

    version: str
    key_version: str | None
    fields: Fields
    cargos: tuple[BoletimCargo, ...]
    hashes: tuple[str, ...]
    signature: str

    def __post_init__(self) -> None:
        hashes_ok = isinstance(self.hashes, tuple) and self.hashes and all(_matches(_HEX128, h) for h in self.hashes)
        if self.version not in VERSIONS or not hashes_ok or not _is_fields(self.fields):
            raise MalformedError("qrbu: a boletim needs a known version, its records and its hash chain")
        if not _signature_ok(self.version, self.signature):
            raise MalformedError("qrbu: ASSI is not a signature of this version")
        for key in IDENTIFICATION:
            value = self.get(key)
            valid = value is not None and (re.fullmatch("[A-Z]{2}", value) if key == "UNFE" else _CODE(value))
            if not valid:
                raise MalformedError(f"qrbu: identification {key} missing or malformed ({value!r})")

    def get(self, key: str) -> str | None:
        """The value of the first record with this key, or None."""
        return next((value for k, value in self.fields if k == key), None)

    def _field(self, key: str) -> str:
        value = self.get(key)
        assert value is not None  # checked in __post_init__
        return value

    @property
    def uf(self) -> str:
        """The state (``UNFE``; ``ZZ`` abroad)."""
        return self._field("UNFE")

    @property
    def municipality(self) -> str:
        """The TSE municipality code (``MUNI``), as printed."""
        return self._field("MUNI")

    @property
    def zone(self) -> str:
        """The electoral zone (``ZONA``), as printed."""
        return self._field("ZONA")

    @property
    def section(self) -> str:
        """The electoral section (``SECA``), as printed."""
        return self._field("SECA")

    @property
    def mesa_id(self) -> str:
        """``<MUNI>.<ZONA>.<SECA>`` exactly as printed (zero padding kept): the mesa id a definition would use."""
        return f"{self.municipality}.{self.zone}.{self.section}"

    @property
    def apt(self) -> int | None:
        """Voters apt to vote in the section (``APTO``), or None."""
        value = self.get("APTO")
        return int(value) if value is not None and _COUNT(value) else None

    def cargo(self, code: str, election: str | None = None) -> BoletimCargo | None:
        """The cargo with this code (in the given election, if named), or None."""
        return next((c for c in self.cargos if c.code == code and election in (None, c.election)), None)


def _sha512(text: str) -> str:
    return hashlib.sha512(text.encode("ascii")).hexdigest().upper()


def assemble(parts: Iterable[QrbuPart]) -> Boletim:
    """Join the parts of one BU (any order), check the hash chain and the content structure."""
    given = list(parts)
    if not given:
        raise MalformedError("qrbu: no parts")
    first = given[0]
    by_index: dict[int, QrbuPart] = {}
    for part in given:
        if (part.count, part.version, part.key_version) != (first.count, first.version, first.key_version):
            raise MalformedError(
                f"qrbu: part {part.index} (of {part.count}, VRQR {part.version}, VRCH {part.key_version}) does not "
                f"belong with part {first.index} (of {first.count}, VRQR {first.version}, VRCH {first.key_version})"
            )
        if part.index in by_index:
            raise MalformedError(f"qrbu: part {part.index} of {part.count} given twice")
        by_index[part.index] = part
    missing = [i for i in range(1, first.count + 1) if i not in by_index]
    if missing:
        raise MalformedError(f"qrbu: part {missing[0]} of {first.count} is missing")
    ordered = [by_index[i] for i in range(1, first.count + 1)]
    chained = ""
    for part in ordered:
        covered = part.data if not chained else f"{chained} {part.data}"
        digest = _sha512(covered)
        if digest != part.hash:
            raise MalformedError(
                f"qrbu: part {part.index} of {part.count}: HASH does not match its content and the parts before it"
            )
        chained = f"{covered} HASH:{digest}"
    last = ordered[-1]
    if last.signature is None:
        raise MalformedError(f"qrbu: the last part ({last.index} of {last.count}) carries no ASSI signature")
    fields = tuple(field for part in ordered for field in part.fields)
    return Boletim(
        first.version, first.key_version, fields, _structure(fields), tuple(p.hash for p in ordered), last.signature
    )


def public_key_path(boletim: Boletim) -> str:
    """Where the TSE publishes the 1.5 key that signs this BU: ``<VRCH>/<LEGAL|COMUNITARIA>/<fase><uf>qrcode.pub``."""
    origin = {"LEG": "LEGAL", "COM": "COMUNITARIA"}.get(boletim.get("ORLC") or "")
    phase = boletim.get("FASE")
    if boletim.key_version is None or origin is None or phase not in ("O", "S", "T"):
        raise MalformedError("qrbu: the key is named only in version 1.5 with ORLC LEG/COM and FASE O/S/T")
    return f"{boletim.key_version}/{origin}/{phase.lower()}{boletim.uf.lower()}qrcode.pub"


def signature_valid(boletim: Boletim, public_key: bytes) -> bool:
    """Whether ASSI is the Ed25519 signature (1.x) of the last hash's 64 bytes under a raw 32-byte TSE key."""
    if boletim.version == "6.0":
        raise SignatureError("qrbu: VRQR 6.0 signatures (urna certificate, E-521 or P-521) are not verified here")
    if len(public_key) != 32:
        raise KeyFormatError("qrbu: the TSE public key must be 32 raw bytes")
    check_public_key(public_key)
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            bytes.fromhex(boletim.signature), bytes.fromhex(boletim.hashes[-1])
        )
    except InvalidSignature:
        return False
    return True
