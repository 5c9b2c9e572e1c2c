"""Readers of published bytes: a bundle directory or an http(s):// URL serving one."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from actas.errors import FetchError

MAX_FILE = 64 * 1024 * 1024  # no published file is near this; a larger answer is refused


def _safe(path: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or any(p in ("..", ".") for p in parts):
        raise FetchError(f"{path}: not a relative bundle path")
    return path


class DirectoryReader:
    """Reads files under a bundle directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def read(self, path: str) -> bytes:
        """The bytes of a file in the bundle."""
        try:
            return (self.root / _safe(path)).read_bytes()
        except FileNotFoundError:
            raise FetchError(f"{path}: missing from the bundle") from None
        except OSError as exc:
            raise FetchError(f"{path}: cannot be read ({exc.strerror})") from None

    def read_chunks(self, path: str, size: int = 1 << 20) -> Iterator[bytes]:
        """The file's bytes a piece at a time (large results files are compared without loading them)."""
        try:
            with open(self.root / _safe(path), "rb") as handle:
                while chunk := handle.read(size):
                    yield chunk
        except FileNotFoundError:
            raise FetchError(f"{path}: missing from the bundle") from None
        except OSError as exc:
            raise FetchError(f"{path}: cannot be read ({exc.strerror})") from None

    def __repr__(self) -> str:
        return f"DirectoryReader({str(self.root)!r})"


class HttpReader:
    """Reads files of a bundle served over HTTP(S)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise FetchError(f"{base_url}: not an http(s) URL")
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout

    def read(self, path: str) -> bytes:
        """The bytes of a file in the bundle."""
        url = self.base_url + _safe(path)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                data: bytes = response.read(MAX_FILE + 1)
        except urllib.error.HTTPError as exc:
            raise FetchError(f"{path}: HTTP {exc.code} from {url}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise FetchError(f"{path}: cannot fetch {url} ({exc})") from None
        if len(data) > MAX_FILE:
            raise FetchError(f"{path}: larger than {MAX_FILE} bytes")
        return data


def open_reader(location: str) -> DirectoryReader | HttpReader:
    """A reader for a directory path or an http(s) URL."""
    if location.startswith(("http://", "https://")):
        return HttpReader(location)
    if not Path(location).is_dir():
        raise FetchError(f"{location}: not a directory or http(s) URL")
    return DirectoryReader(location)
