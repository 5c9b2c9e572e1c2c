"""Log entry types and their canonical bytes (docs/formats.md §3).

Every entry is one canonical JSON object with ``"v": 1``, a ``"type"`` and a ``"sig"``: an Ed25519 signature,
base64, over the domain-separated canonical bytes of the same object without ``"sig"``. Types:

* ``election`` — the SHA-256 digest of the canonical election definition; signed by the authority.
* ``enroll`` — a device key and the mesas it may sign for; signed by the authority.
* ``acta`` — a tally sheet (see :mod:`actas.core.acta`); signed by the device key it names.
* ``observation`` — a witness's copy of a printed acta: the SHA-256 of the image it was read from, the QR payload
  exactly as read, its format and mesa; signed by the witness key it names. Whether the payload decodes to that
  mesa is checked where the election definition is at hand (:mod:`actas.core.observation`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from actas.core import canonical
from actas.core.acta import Acta
from actas.core.b64 import b64decode, b64encode
from actas.core.keys import CONTEXT_ACTA, CONTEXT_ELECTION, CONTEXT_ENROLL, CONTEXT_OBSERVATION, Signer, Verifier
from actas.errors import ActasError, KeyFormatError, MalformedError

VERSION = 1
MAX_ENTRY_SIZE = 65535  # entry bundles prefix each entry with a uint16 length
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_ID = re.compile(r"[0-9A-Za-z._-]{1,64}\Z")


@dataclass(frozen=True, slots=True)
class ElectionEntry:
    """Binds the log to one election definition by its digest."""

    origin: str
    digest: bytes
    signature: bytes

    def body(self) -> dict[str, Any]:
        """The signed fields."""
        return {"digest": self.digest.hex(), "origin": self.origin, "type": "election", "v": VERSION}


@dataclass(frozen=True, slots=True)
class EnrollEntry:
    """The authority's statement that a device key may sign actas for these mesas."""

    election: str
    device: str
    mesas: tuple[str, ...]
    signature: bytes

    def __post_init__(self) -> None:
        if not self.mesas:
            raise MalformedError("enroll.mesas: must list at least one mesa")
        for i, mesa in enumerate(self.mesas):  # types first: sorting mixed or unhashable items raises TypeError
            if not isinstance(mesa, str) or not _ID.match(mesa):
                raise MalformedError(f"enroll.mesas[{i}]: must match [0-9A-Za-z._-]{{1,64}}")
        if list(self.mesas) != sorted(set(self.mesas)):
            raise MalformedError("enroll.mesas: must be sorted and unique")

    def body(self) -> dict[str, Any]:
        """The signed fields."""
        return {
            "device": self.device,
            "election": self.election,
            "mesas": list(self.mesas),
            "type": "enroll",
            "v": VERSION,
        }


@dataclass(frozen=True, slots=True)
class ActaEntry:
    """A tally sheet with its device signature."""

    acta: Acta
    signature: bytes

    def body(self) -> dict[str, Any]:
        """The signed fields."""
        return self.acta.to_value()


# Formats whose payload decodes to one mesa's acta (core/observation.py); a Brazilian boletim (qrbu) cannot be
# mapped to a definition's contests yet, so it is not an observation format.
OBSERVATION_FORMATS = ("actas1", "cne2024")
MAX_PAYLOAD_CHARS = 16384  # a multi-part boletim is at most a few QR codes of ≤ 4,296 characters


@dataclass(frozen=True, slots=True)
class ObservationEntry:
    """A witness's copy of a printed acta: which image, what its QR said, signed by the witness key."""

    election: str
    mesa: str
    format: str
    image: str  # SHA-256 of the image file, lower-case hex; the image is published by this name
    payload: str  # the QR text exactly as decoded
    witness: str  # the witness key string
    signature: bytes

    def __post_init__(self) -> None:
        for name, text in (("election", self.election), ("witness", self.witness), ("payload", self.payload)):
            if not isinstance(text, str) or not text:
                raise MalformedError(f"observation.{name}: must be a non-empty string")
        if not isinstance(self.mesa, str) or not _ID.match(self.mesa):
            raise MalformedError("observation.mesa: must match [0-9A-Za-z._-]{1,64}")
        if self.format not in OBSERVATION_FORMATS:
            raise MalformedError(f"observation.format: {self.format!r} is not one of {', '.join(OBSERVATION_FORMATS)}")
        if not isinstance(self.image, str) or not _HEX64.match(self.image):
            raise MalformedError("observation.image: must be 64 lower-case hex digits (SHA-256)")
        if len(self.payload) > MAX_PAYLOAD_CHARS:
            raise MalformedError(f"observation.payload: longer than {MAX_PAYLOAD_CHARS} characters")

    def body(self) -> dict[str, Any]:
        """The signed fields."""
        return {
            "election": self.election,
            "format": self.format,
            "image": self.image,
            "mesa": self.mesa,
            "payload": self.payload,
            "type": "observation",
            "v": VERSION,
            "witness": self.witness,
        }


Entry = ElectionEntry | EnrollEntry | ActaEntry | ObservationEntry
CONTEXTS: dict[type, str] = {
    ElectionEntry: CONTEXT_ELECTION,
    EnrollEntry: CONTEXT_ENROLL,
    ActaEntry: CONTEXT_ACTA,
    ObservationEntry: CONTEXT_OBSERVATION,
}


def _signed(body: dict[str, Any], context: str, signer: Signer) -> bytes:
    signature = signer.sign_in_context(context, canonical.encode(body))
    data = canonical.encode({**body, "sig": b64encode(signature)})
    if len(data) > MAX_ENTRY_SIZE:
        raise MalformedError(f"entry is {len(data)} bytes; entries must be at most {MAX_ENTRY_SIZE}")
    return data


def election_entry(origin: str, digest: bytes, authority: Signer) -> bytes:
    """Canonical bytes of an election entry signed by the authority."""
    body = ElectionEntry(origin, digest, b"").body()
    return _signed(body, CONTEXT_ELECTION, authority)


def enroll_entry(election: str, device: Verifier, mesas: list[str] | tuple[str, ...], authority: Signer) -> bytes:
    """Canonical bytes of an enrollment of a device key for mesas, signed by the authority."""
    body = EnrollEntry(election, str(device), tuple(sorted(set(mesas))), b"").body()
    return _signed(body, CONTEXT_ENROLL, authority)


def acta_entry(acta: Acta, device: Signer) -> bytes:
    """Canonical bytes of an acta signed by its device key."""
    if acta.device != str(device.verifier):
        raise KeyFormatError("acta.device names a different key from the one signing it")
    return _signed(acta.to_value(), CONTEXT_ACTA, device)


def observation_entry(
    election: str, mesa: str, payload_format: str, image_sha256: str, payload: str, witness: Signer
) -> bytes:
    """Canonical bytes of a witness observation signed by the witness key."""
    body = ObservationEntry(election, mesa, payload_format, image_sha256, payload, str(witness.verifier), b"").body()
    return _signed(body, CONTEXT_OBSERVATION, witness)


def _fields(value: dict[str, Any], want: frozenset[str], kind: str) -> None:
    if value.keys() != want:
        keys = set(value)
        missing = sorted(want - keys)
        extra = sorted(keys - want)
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else []
        )
        raise MalformedError(f"{kind} entry: {'; '.join(parts)}")


def _string(value: dict[str, Any], key: str, kind: str) -> str:
    item = value[key]
    if not isinstance(item, str) or not item:
        raise MalformedError(f"{kind}.{key}: must be a non-empty string")
    return item


def _ints(value: dict[str, Any], key: str) -> tuple[int, ...]:
    item = value[key]
    if not isinstance(item, list):
        raise MalformedError(f"acta.{key}: must be a list of integers")
    return tuple(item)


def _parse_election(value: dict[str, Any], signature: bytes) -> ElectionEntry:
    _fields(value, _ELECTION_KEYS, "election")
    digest = _string(value, "digest", "election")
    if not _HEX64.match(digest):
        raise MalformedError("election.digest: must be 64 lower-case hex digits")
    return ElectionEntry(_string(value, "origin", "election"), bytes.fromhex(digest), signature)


def _parse_enroll(value: dict[str, Any], signature: bytes) -> EnrollEntry:
    _fields(value, _ENROLL_KEYS, "enroll")
    device = _string(value, "device", "enroll")
    Verifier.parse(device)
    mesas = value["mesas"]
    if not isinstance(mesas, list):
        raise MalformedError("enroll.mesas: must be a list of mesa ids")
    return EnrollEntry(_string(value, "election", "enroll"), device, tuple(mesas), signature)


def _parse_acta(value: dict[str, Any], signature: bytes) -> ActaEntry:
    _fields(value, _ACTA_KEYS, "acta")
    # Acta validates every field's type and range on construction; only the list shapes are checked here.
    acta = Acta(
        election=value["election"],
        mesa=value["mesa"],
        contest=value["contest"],
        registered=value["registered"],
        tickets=_ints(value, "tickets"),
        options=_ints(value, "options"),
        null=value["null"],
        blank=value["blank"],
        device=value["device"],
    )
    return ActaEntry(acta, signature)


def _parse_observation(value: dict[str, Any], signature: bytes) -> ObservationEntry:
    _fields(value, _OBSERVATION_KEYS, "observation")
    witness = _string(value, "witness", "observation")
    Verifier.parse(witness)
    return ObservationEntry(
        election=value["election"],
        mesa=value["mesa"],
        format=value["format"],
        image=value["image"],
        payload=value["payload"],
        witness=witness,
        signature=signature,
    )


_OBSERVATION_KEYS = frozenset({"election", "format", "image", "mesa", "payload", "type", "v", "witness"})
_ELECTION_KEYS = frozenset({"digest", "origin", "type", "v"})
_ENROLL_KEYS = frozenset({"device", "election", "mesas", "type", "v"})
_ACTA_KEYS = frozenset(
    {
        "blank",
        "contest",
        "device",
        "election",
        "mesa",
        "null",
        "options",
        "registered",
        "tickets",
        "type",
        "v",
    }
)
_PARSERS: dict[str, Callable[[dict[str, Any], bytes], Entry]] = {
    "election": _parse_election,
    "enroll": _parse_enroll,
    "acta": _parse_acta,
    "observation": _parse_observation,
}
KNOWN_TYPES = tuple(_PARSERS)


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """An entry with the exact bytes its signature covers."""

    entry: Entry
    signed_bytes: bytes


def parse_entry(data: bytes) -> ParsedEntry:
    """Parse entry bytes strictly: canonical JSON, known type and version, exact fields."""
    if len(data) > MAX_ENTRY_SIZE:
        raise MalformedError(f"entry is {len(data)} bytes; entries must be at most {MAX_ENTRY_SIZE}")
    value = canonical.decode(data, check_ranges=False)  # every integer field is range-checked below
    if not isinstance(value, dict):
        raise MalformedError("entry: must be a JSON object")
    if value.get("v") != VERSION or type(value.get("v")) is not int:
        raise MalformedError(f"entry.v: unsupported format version {value.get('v')!r}")
    kind = value.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise MalformedError(f"entry.type: unknown entry type {kind!r}")
    sig = value.pop("sig", None)
    if not isinstance(sig, str):
        raise MalformedError(f"{kind}.sig: missing or not a string")
    signature = b64decode(sig, f"{kind}.sig", 64)
    entry = parser(value, signature)
    # The signed bytes are the entry without its top-level "sig" member. No entry type has nested objects
    # and canonical strings escape '"', so the last ',"sig":"' is that member; cut it out instead of
    # encoding again.
    member = b',"sig":"' + sig.encode("ascii") + b'"'
    at = data.rfind(b',"sig":"')
    if at < 0 or data[at : at + len(member)] != member:
        raise MalformedError(f"{kind}.sig: not where the canonical form puts it")
    return ParsedEntry(entry, data[:at] + data[at + len(member) :])


def signer_of(parsed: ParsedEntry, authority: Verifier) -> Verifier | None:
    """The key an entry must be signed by: its device key (acta), witness key (observation), else the authority.

    None when the entry names a key that cannot be used: its signature cannot verify. Any of the project's errors
    counts as that, so one entry's key never stops the check of the others beside it (signatures_valid).
    """
    entry = parsed.entry
    try:
        if isinstance(entry, ActaEntry):
            return entry.acta.device_verifier()
        if isinstance(entry, ObservationEntry):
            return Verifier.parse(entry.witness)
    except ActasError:
        return None
    return authority


def signature_valid(parsed: ParsedEntry, authority: Verifier) -> bool:
    """Whether the entry's signature verifies: device key for actas, witness key for observations, else authority."""
    return signatures_valid([parsed], authority)[0]


def signatures_valid(parsed: Sequence[ParsedEntry], authority: Verifier) -> list[bool]:
    """signature_valid() for many entries: every key is parsed first, then every signature checked in one run.

    Why in two passes: Ed25519 verification runs fastest back to back, its tables still in the CPU's caches;
    Python work between two verifications evicts them and costs about a fifth more per entry.
    """
    signers = [signer_of(item, authority) for item in parsed]
    return [
        signer is not None
        and signer.verify_in_context(CONTEXTS[type(item.entry)], item.signed_bytes, item.entry.signature)
        for item, signer in zip(parsed, signers, strict=True)
    ]
