"""C2SP signed notes, tlog checkpoints and Ed25519 tlog cosignatures.

* signed-note (https://c2sp.org/signed-note): ``<text ending in \\n>\\n— <name> <base64(key id ‖ sig)>\\n…``
* tlog-checkpoint (https://c2sp.org/tlog-checkpoint): text = origin, decimal size, base64 root, extensions
* tlog-cosignature (https://c2sp.org/tlog-cosignature), type 0x04: signs
  ``cosignature/v1\\ntime <t>\\n`` + checkpoint text; signature = uint64 big-endian timestamp ‖ Ed25519 sig.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from actas.core.b64 import b64decode, b64encode
from actas.core.keys import ALG_COSIGNATURE, Signer, Verifier, check_key_name, key_hash
from actas.core.merkle import HASH_SIZE, MAX_TREE_SIZE
from actas.errors import KeyFormatError, MalformedError, SignatureError

MAX_NOTE_SIZE = 1 << 20
MAX_SIGNATURES = 100  # the spec asks verifiers to accept at least 16
SIG_PREFIX = "— "
COSIGNATURE_HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = (1 << 63) - 1


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 32-bit key id and signature bytes."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        try:
            check_key_name(self.name)
        except KeyFormatError as exc:
            raise MalformedError(f"signature line: {exc}") from None
        if not 0 <= self.key_id <= 0xFFFFFFFF:
            raise MalformedError(f"signature line {self.name!r}: key id must be 32 bits")
        if not self.signature:
            raise MalformedError(f"signature line {self.name!r}: empty signature")

    def line(self) -> str:
        """Return the signature line, including its final newline."""
        return f"{SIG_PREFIX}{self.name} {b64encode(self.key_id.to_bytes(4, 'big') + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A note's text (ending in newline) and its signature lines in order; verified ones after open_note."""

    text: str
    signatures: tuple[NoteSignature, ...]
    verified: tuple[NoteSignature, ...] = ()

    def to_bytes(self) -> bytes:
        """Serialise the note with all its signature lines."""
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")


def _check_text(text: str) -> None:
    """Reject note text the format cannot carry unambiguously."""
    if not text.endswith("\n"):
        raise MalformedError("note text: must end with a newline")
    if text.endswith("\n\n") or text == "\n":
        raise MalformedError("note text: must not end with an empty line")
    for i, ch in enumerate(text):
        if ch < " " and ch != "\n":
            raise MalformedError(f"note text: control character U+{ord(ch):04X} at position {i}")


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """Sign text with each signer (Ed25519, type 0x01) and return the signed note."""
    _check_text(text)
    if not signers:
        raise MalformedError("sign_note: at least one signer is needed")
    message = text.encode("utf-8")
    sigs = tuple(NoteSignature(s.name, s.key_id, s.sign(message)) for s in signers)
    return Note(text, sigs).to_bytes()


def parse_note(data: bytes) -> Note:
    """Parse a signed note strictly without verifying it."""
    if len(data) > MAX_NOTE_SIZE:
        raise MalformedError(f"note: {len(data)} bytes exceeds {MAX_NOTE_SIZE}")
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"note: invalid UTF-8 at byte {exc.start}") from None
    # The text is separated from the signatures by the note's last empty line.
    split = whole.rfind("\n\n")
    if split < 0:
        raise MalformedError("note: no empty line before the signature block")
    text, block = whole[: split + 1], whole[split + 2 :]
    _check_text(text)
    if not block.endswith("\n"):
        raise MalformedError("note: signature block must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedError(f"note: more than {MAX_SIGNATURES} signatures")
    offset = len(text.encode("utf-8")) + 1
    sigs = []
    for line in lines:
        sigs.append(_parse_signature_line(line, offset))
        offset += len(line.encode("utf-8")) + 1
    return Note(text, tuple(sigs))


def _parse_signature_line(line: str, offset: int) -> NoteSignature:
    where = f"note: signature line at byte {offset}"
    if not line.startswith(SIG_PREFIX):
        raise MalformedError(f"{where}: must start with '— '")
    if any(ch < " " for ch in line):
        raise MalformedError(f"{where}: control character")
    parts = line[len(SIG_PREFIX) :].split(" ")
    if len(parts) != 2:
        raise MalformedError(f"{where}: expected '— <name> <signature>'")
    name, encoded = parts
    raw = b64decode(encoded, where)
    if len(raw) < 5:
        raise MalformedError(f"{where}: signature shorter than 5 bytes")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def open_note(data: bytes, verifiers: Sequence[Verifier]) -> Note:
    """Parse and verify a note: a known key must have signed it and every known key's signature verify."""
    note = parse_note(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    message = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue  # unknown keys are ignored, as the spec requires
        if (sig.name, sig.key_id) in seen:
            raise MalformedError(f"note: key {sig.name!r} signed more than once")
        seen.add((sig.name, sig.key_id))
        if not verifier.verify(message, sig.signature):
            raise SignatureError(f"note: signature by {sig.name!r} ({sig.key_id:08x}) does not verify")
        verified.append(sig)
    if not verified:
        raise SignatureError("note: no signature by a known key")
    return Note(note.text, note.signatures, tuple(verified))


def _decimal(text: str, what: str) -> int:
    # int() would accept '+', '_', spaces and non-ASCII digits.
    if not text or not text.isascii() or not text.isdigit():
        raise MalformedError(f"{what} {text!r}: not an ASCII decimal")
    if len(text) > 1 and text[0] == "0":
        raise MalformedError(f"{what} {text!r}: leading zero")
    if len(text) > 19:
        raise MalformedError(f"{what} {text!r}: too large")
    return int(text)


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", tuple(self.extensions))
        if not self.origin:
            raise MalformedError("checkpoint origin: must be non-empty")
        for what, line in [("origin", self.origin), *(("extension line", e) for e in self.extensions)]:
            if not line:
                raise MalformedError(f"checkpoint {what}: must be non-empty")
            # Also characters other parsers treat as line breaks (U+0085, U+2028, U+2029) and C1 controls.
            if any(ch < " " or "\x7f" <= ch <= "\x9f" or ch in "\u2028\u2029" for ch in line):
                raise MalformedError(f"checkpoint {what} {line!r}: control character or line break")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size < MAX_TREE_SIZE:
            raise MalformedError(f"checkpoint size {self.size!r}: must be an integer in [0, 2**63)")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise MalformedError(f"checkpoint root hash: must be {HASH_SIZE} bytes")

    def to_text(self) -> str:
        """Return the checkpoint note text."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text strictly."""
        if not text.endswith("\n"):
            raise MalformedError("checkpoint: text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedError(f"checkpoint: {len(lines)} lines, at least 3 are needed")
        size = _decimal(lines[1], "checkpoint line 2 (size)")
        root = b64decode(lines[2], "checkpoint line 3 (root hash)", HASH_SIZE)
        return cls(lines[0], size, root, tuple(lines[3:]))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint opened with the log's key, with the note it came from (for its cosignature lines)."""

    checkpoint: Checkpoint
    note: Note

    def cosignatures(self, witnesses: Sequence[Verifier]) -> dict[str, int]:
        """Verify the cosignatures of the given witnesses present; return witness name → timestamp."""
        found: dict[str, int] = {}
        for witness in witnesses:
            key_id = cosigner_key_id(witness)
            for sig in self.note.signatures:
                if sig.name == witness.name and sig.key_id == key_id:
                    if witness.name in found:
                        raise MalformedError(f"checkpoint: witness {witness.name!r} cosigned more than once")
                    found[witness.name] = verify_cosignature(self.note.text, sig, witness)
        return found


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> bytes:
    """Sign a checkpoint with the log key and return the signed note."""
    return sign_note(checkpoint.to_text(), [signer])


def open_signed_checkpoint(data: bytes, verifier: Verifier) -> SignedCheckpoint:
    """Open a checkpoint note that the log key must have signed; keep its other signature lines."""
    note = open_note(data, [verifier])
    return SignedCheckpoint(Checkpoint.from_text(note.text), note)


def open_checkpoint(data: bytes, verifier: Verifier) -> Checkpoint:
    """Open a checkpoint note that the log key must have signed and return the checkpoint."""
    return open_signed_checkpoint(data, verifier).checkpoint


def cosigner_key_id(verifier: Verifier) -> int:
    """Return the key id of a cosigner's Ed25519 key for cosignature type 0x04."""
    return key_hash(verifier.name, verifier.public, ALG_COSIGNATURE)


def cosignature_message(checkpoint_text: str, timestamp: int) -> bytes:
    """Return the bytes an Ed25519 cosigner signs for a checkpoint at a time."""
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{checkpoint_text}".encode()


def _checkpoint_text(checkpoint: Checkpoint | str | bytes) -> str:
    if isinstance(checkpoint, Checkpoint):
        return checkpoint.to_text()
    text = parse_note(checkpoint).text if isinstance(checkpoint, bytes) else checkpoint
    Checkpoint.from_text(text)  # only well-formed checkpoints are cosigned or verified
    return text


def cosign_checkpoint(checkpoint: Checkpoint | str | bytes, signer: Signer, timestamp: int) -> NoteSignature:
    """Cosign a checkpoint (object, text, or signed note) at a POSIX timestamp."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedError(f"cosignature timestamp {timestamp!r}: must be in [0, 2**63)")
    text = _checkpoint_text(checkpoint)
    sig = signer.sign(cosignature_message(text, timestamp))
    return NoteSignature(signer.name, cosigner_key_id(signer.verifier), timestamp.to_bytes(8, "big") + sig)


def verify_cosignature(checkpoint: Checkpoint | str | bytes, signature: NoteSignature, verifier: Verifier) -> int:
    """Verify a cosignature of a checkpoint by a cosigner; return its timestamp or raise SignatureError."""
    text = _checkpoint_text(checkpoint)
    if signature.name != verifier.name or signature.key_id != cosigner_key_id(verifier):
        raise SignatureError(f"cosignature by {signature.name!r}: not from cosigner {verifier.name!r}")
    if len(signature.signature) != 8 + 64:
        raise SignatureError(f"cosignature by {signature.name!r}: must be 72 bytes")
    timestamp = int.from_bytes(signature.signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise SignatureError(f"cosignature by {signature.name!r}: timestamp above 2**63 - 1")
    if not verifier.verify(cosignature_message(text, timestamp), signature.signature[8:]):
        raise SignatureError(f"cosignature by {signature.name!r} does not verify")
    return timestamp


def add_signatures(note_bytes: bytes, signatures: Iterable[NoteSignature | str]) -> bytes:
    """Append signature lines (objects or '— name sig' lines) to a signed note, skipping exact duplicates."""
    note = parse_note(note_bytes)
    sigs = list(note.signatures)
    for item in signatures:
        if isinstance(item, str):
            item = _parse_signature_line(item.removesuffix("\n"), 0)
        if item not in sigs:
            sigs.append(item)
    out = Note(note.text, tuple(sigs)).to_bytes()
    parse_note(out)  # enforce the size and count limits on the result
    return out
