"""A witness's state directory: the last checkpoint it cosigned, a lock, and the evidence it found.

::

    <state>/checkpoint      the last cosigned checkpoint: the log's signed note with this witness's cosignature
    <state>/lock            held (flock) by the one witness process using the directory
    <state>/evidence/<kind>-<size>-<UTC time>/   old.checkpoint, new.checkpoint, evidence.json, README.txt[, tiles/]

The checkpoint is replaced durably (temporary file, fsync, rename) before a cosignature leaves the machine, so
after a crash the witness never cosigns a different tree of a size it already vouched for.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import IO

from actas.core.b64 import b64encode
from actas.core.keys import Signer
from actas.core.note import Checkpoint
from actas.errors import KeyFormatError, StorageError
from actas.storage.files import write_durable

README = {
    "equivocation": (
        "The log signed two checkpoints of the same size with different roots: two different histories.\n"
        "Both notes carry the log's signature (check them with its key); showing them to anyone proves\n"
        "the fork. This witness cosigned old.checkpoint and refused new.checkpoint.\n"
    ),
    "inconsistent": (
        "The log's hash tiles (in tiles/) do not prove that one signed checkpoint extends the other\n"
        "append-only, or do not give a checkpoint's root (without old.checkpoint: the first checkpoint this\n"
        "witness saw). This witness refused to cosign new.checkpoint.\n"
        "Re-run the check from these files (or fetch the tiles again) before calling it a fork: tiles are\n"
        "not signed, so a damaged mirror can cause this as well as a forked log.\n"
    ),
    "rollback": (
        "The log served a checkpoint smaller than the one this witness already cosigned (old.checkpoint).\n"
        "Unless the reason above says it could not be checked, the log's tiles showed the smaller tree to be a\n"
        "prefix of the larger one, so this is no fork; but a log never shrinks: a stale server or mirror, or\n"
        "entries lost. The witness refused to cosign it.\n"
    ),
}


def default_state_dir(origin: str) -> Path:
    """$XDG_STATE_HOME/actas/witness/<hash of the origin> (default ~/.local/state/…), one per log."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "actas" / "witness" / hashlib.sha256(origin.encode("utf-8")).hexdigest()[:16]


def load_signer(path: Path) -> Signer:
    """The witness's private key from a file holding a PRIVATE+KEY+… string."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError) as exc:
        raise KeyFormatError(f"{path}: cannot read the private key ({exc})") from None
    return Signer.parse(text)


def write_key_pair(name: str, prefix: Path, seed: bytes) -> tuple[Path, Path]:
    """Write PREFIX.key (private, mode 0600) and PREFIX.vkey for a new key; refuse to overwrite either."""
    signer = Signer.from_seed(name, seed)
    private, public = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".vkey")
    for path in (private, public):
        if path.exists():
            raise FileExistsError(f"{path}: already exists; not overwriting a key")
    private.parent.mkdir(parents=True, exist_ok=True)
    for path, text, mode in ((private, str(signer), 0o600), (public, str(signer.verifier), 0o644)):
        # O_EXCL: a key file is never replaced, even by a race; the mode applies from creation on.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write((text + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
    return private, public


def _summary(checkpoint: Checkpoint) -> dict[str, object]:
    return {"origin": checkpoint.origin, "size": checkpoint.size, "root": b64encode(checkpoint.root_hash)}


class WitnessState:
    """The state directory, locked against a second witness process for as long as it is open."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock: IO[bytes] | None = open(root / "lock", "ab")  # noqa: SIM115 (held until close)
        except OSError as exc:
            raise StorageError(f"{root}: cannot use as the witness state directory ({exc})") from None
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise StorageError(f"{root}: another witness process is using this state directory") from None

    @property
    def checkpoint_path(self) -> Path:
        """Where the last cosigned checkpoint is kept."""
        return self.root / "checkpoint"

    def load(self) -> bytes | None:
        """The last cosigned checkpoint note, or None before the first cosignature."""
        try:
            return self.checkpoint_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"{self.checkpoint_path}: cannot read ({exc})") from None

    def save(self, note: bytes) -> None:
        """Replace the last cosigned checkpoint durably."""
        try:
            write_durable(self.checkpoint_path, note)
        except OSError as exc:
            raise StorageError(f"{self.checkpoint_path}: cannot write ({exc})") from None

    def evidence(
        self,
        kind: str,
        old: tuple[Checkpoint, bytes] | None,
        new: tuple[Checkpoint, bytes],
        reason: str,
        details: dict[str, object],
        now: float,
        tiles: dict[str, bytes] | None = None,
    ) -> Path:
        """Write the signed checkpoints (old: None on first use), what was found and why; return the directory."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        base = self.root / "evidence" / f"{kind}-{new[0].size}-{stamp}"
        where, n = base, 1
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            while True:
                try:
                    where.mkdir()
                    break
                except FileExistsError:
                    n += 1
                    where = base.with_name(f"{base.name}-{n}")
            if old is not None:
                write_durable(where / "old.checkpoint", old[1])
            write_durable(where / "new.checkpoint", new[1])
            for path, data in (tiles or {}).items():
                write_durable(where / "tiles" / path, data)
            value = {
                "kind": kind,
                "reason": reason,
                "observed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                "old": _summary(old[0]) if old is not None else None,
                "new": _summary(new[0]),
                **details,
            }
            write_durable(where / "evidence.json", (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode())
            write_durable(where / "README.txt", f"{kind}: {reason}\n\n{README[kind]}".encode())
        except OSError as exc:
            raise StorageError(f"{where}: cannot write the evidence ({exc})") from None
        return where

    def has_evidence(self, kind: str, checkpoint: Checkpoint) -> bool:
        """Whether evidence of this kind about this exact checkpoint was written before (not to repeat it)."""
        for path in (self.root / "evidence").glob(f"{kind}-{checkpoint.size}-*/evidence.json"):
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(value, dict) and value.get("new") == _summary(checkpoint):
                return True
        return False

    def close(self) -> None:
        """Release the lock."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None
