"""A polling station's durable outbox: actas waiting to be sent, their receipts, and permanent rejections.

::

    OUTBOX/
      authority.vkey              the authority key receipts are checked against (pinned on first use)
      pending/<leaf hex>.acta     signed actas not yet receipted
      receipts/<leaf hex>.receipt the authority's receipt (canonical bytes), written only after it verified
      receipts/<leaf hex>.acta    the entry the receipt is for
      receipts/<leaf hex>.json    status (accepted, duplicate, conflict), existing_leaf_hash, server URL
      rejected/<leaf hex>.acta    actas the service refused for good (400, 403, 413, 422)
      rejected/<leaf hex>.json    the problem it answered with

Every change is a durable write (temporary file, fsync, rename) followed by an fsync of the directory, and a
pending file is removed only after its receipt or rejection is on disk, so a SIGKILL or power cut at any point
leaves each acta pending, receipted, or both (then the receipt wins). File names are leaf hashes, so
re-enqueueing the same acta is a no-op.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from actas.core.keys import Verifier
from actas.core.merkle import leaf_hash
from actas.core.receipt import Receipt
from actas.errors import KeyFormatError, StorageError, UnavailableError
from actas.storage.files import sync_directory, write_durable

Queued = Literal["queued", "pending", "receipted", "rejected"]
PENDING, RECEIPTS, REJECTED = "pending", "receipts", "rejected"
KEY_FILE = "authority.vkey"


def default_outbox() -> Path:
    """The station's outbox under $XDG_DATA_HOME (default ~/.local/share)/actas/outbox."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "actas" / "outbox"


class Outbox:
    """A directory of pending actas, receipts and rejections; safe to interrupt at any moment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            for name in (PENDING, RECEIPTS, REJECTED):
                (root / name).mkdir(parents=True, exist_ok=True)
            sync_directory(root)  # so the folders themselves survive a power cut on first use
        except OSError as exc:
            raise StorageError(f"{root}: cannot create the outbox ({exc.strerror})") from None

    # -- the authority key -----------------------------------------------------------------------------

    def pinned_authority(self) -> Verifier | None:
        """The authority key pinned in this outbox, if any."""
        path = self.root / KEY_FILE
        if not path.exists():
            return None
        return Verifier.parse(path.read_text(encoding="utf-8").strip())

    def pin_authority(self, authority: Verifier) -> None:
        """Pin the authority key; refuse a different one (its receipts were checked against the pinned key)."""
        pinned = self.pinned_authority()
        if pinned is not None and pinned != authority:
            raise KeyFormatError(
                f"{self.root / KEY_FILE}: this outbox holds receipts checked against {pinned.name}+"
                f"{pinned.key_id_hex}, not {authority.name}+{authority.key_id_hex}; use another --outbox"
            )
        if pinned is None:
            self._write(self.root, KEY_FILE, (str(authority) + "\n").encode())

    # -- state changes ---------------------------------------------------------------------------------

    def enqueue(self, entry: bytes) -> Queued:
        """Queue an acta for sending; 'queued' if new, otherwise where it already is."""
        name = leaf_hash(entry).hex()
        if (self.root / RECEIPTS / f"{name}.receipt").exists():
            return "receipted"
        if (self.root / REJECTED / f"{name}.json").exists():
            return "rejected"
        if (self.root / PENDING / f"{name}.acta").exists():
            return "pending"
        self._write(self.root / PENDING, f"{name}.acta", entry)
        return "queued"

    def pending(self) -> list[tuple[bytes, bytes]]:
        """(leaf hash, entry) of every pending acta, oldest first (the first acta of a mesa should go first)."""
        found: list[tuple[int, str, Path]] = []
        for path in (self.root / PENDING).glob("*.acta"):
            with contextlib.suppress(FileNotFoundError):
                found.append((path.stat().st_mtime_ns, path.name, path))
        items: list[tuple[bytes, bytes]] = []
        for _, name, path in sorted(found):
            leaf = _leaf_of(name)
            if leaf is None:
                continue  # a temporary file or something put there by hand
            if (self.root / RECEIPTS / f"{name[:-5]}.receipt").exists():
                self._remove(path)  # receipted just before a crash removed it
                continue
            try:
                entry = path.read_bytes()
            except FileNotFoundError:
                continue
            if leaf_hash(entry) != leaf:
                raise StorageError(f"{path}: its content does not hash to its name; the outbox is damaged")
            items.append((leaf, entry))
        return items

    def store_receipt(
        self, entry: bytes, receipt: Receipt, status: str, url: str, existing: bytes | None = None
    ) -> None:
        """Keep a verified receipt with its entry and status, then drop the pending file."""
        leaf = leaf_hash(entry)
        if receipt.leaf_hash != leaf:
            raise StorageError(f"receipt for leaf {receipt.leaf_hash.hex()} stored for acta {leaf.hex()}")
        name = leaf.hex()
        meta: dict[str, Any] = {"leaf_hash": name, "status": status, "time": receipt.time, "url": url}
        if existing is not None:
            meta["existing_leaf_hash"] = existing.hex()
        folder = self.root / RECEIPTS
        self._write(folder, f"{name}.acta", entry, sync=False)
        self._write(folder, f"{name}.json", _json(meta), sync=False)
        # The .receipt file is written last: its presence is what marks the acta as done.
        self._write(folder, f"{name}.receipt", receipt.to_bytes())
        self._remove(self.root / PENDING / f"{name}.acta")

    def reject(self, entry: bytes, problem: dict[str, Any], url: str) -> None:
        """Set aside an acta the service refused for good, with its problem, then drop the pending file."""
        name = leaf_hash(entry).hex()
        folder = self.root / REJECTED
        self._write(folder, f"{name}.acta", entry, sync=False)
        self._write(folder, f"{name}.json", _json({"leaf_hash": name, "problem": problem, "url": url}))
        self._remove(self.root / PENDING / f"{name}.acta")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the outbox for one transmitting process (the OS drops the lock when the process dies)."""
        with open(self.root / ".lock", "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UnavailableError(f"{self.root}: another transmit is using this outbox") from None
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- durable file operations -----------------------------------------------------------------------

    def _write(self, folder: Path, name: str, data: bytes, sync: bool = True) -> None:
        try:
            write_durable(folder / name, data)
            if sync:
                sync_directory(folder)
        except OSError as exc:
            raise StorageError(f"{folder / name}: cannot write ({exc.strerror})") from None

    def _remove(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
            sync_directory(path.parent)
        except OSError as exc:
            raise StorageError(f"{path}: cannot remove ({exc.strerror})") from None


def _leaf_of(name: str) -> bytes | None:
    """The leaf hash a file name carries, or None for names that are not <64 hex>.<suffix>."""
    stem = name.split(".", 1)[0]
    if len(stem) != 64 or not all(c in "0123456789abcdef" for c in stem):
        return None
    return bytes.fromhex(stem)


def _json(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, sort_keys=True, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
