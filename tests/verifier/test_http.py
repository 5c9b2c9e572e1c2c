"""Verifying a bundle served over HTTP by a real server on loopback, as a mirror would serve it."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from actas.core.keys import Verifier
from actas.errors import FetchError
from actas.publish.bundle import publish_bundle
from actas.simulate.run import simulate
from actas.verifier.readers import HttpReader, open_reader
from actas.verifier.runner import verify


class QuietHandler(SimpleHTTPRequestHandler):
    """A static file handler that does not log every request."""

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Verifier]]:
    """A small published bundle behind http://127.0.0.1:<port>/."""
    root = tmp_path_factory.mktemp("http")
    summary = simulate(root / "data", mesas=40, seed=3, workers=0)
    published = publish_bundle(summary.data, root / "bundle")
    handler = functools.partial(QuietHandler, directory=str(root / "bundle"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root / "bundle", published.results.authority
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("workers", [0, 2])
def test_bundle_verifies_over_http(served: tuple[str, Path, Verifier], workers: int) -> None:
    """The same steps pass reading every file over HTTP, in-process and with worker processes."""
    url, _, key = served
    report = verify(open_reader(url), key, workers)
    assert report.ok, report.failures
    assert report.size == 81


def test_altered_file_on_the_server_is_named(served: tuple[str, Path, Verifier]) -> None:
    """A mirror serving an altered results file fails step 9 naming it."""
    url, bundle, key = served
    target = bundle / "results" / "presidente" / "estado.json"
    original = target.read_bytes()
    target.write_bytes(original.replace(b'"actas":', b'"actas":1', 1))
    try:
        report = verify(open_reader(url), key, 0)
    finally:
        target.write_bytes(original)
    assert not report.ok
    assert [(f.step, f.where) for f in report.failures] == [(9, "results/presidente/estado.json")]


def test_missing_file_is_a_fetch_error_with_status(served: tuple[str, Path, Verifier]) -> None:
    """A 404 becomes a FetchError naming the path and the status."""
    url, _, _ = served
    with pytest.raises(FetchError, match=r"nothing\.json: HTTP 404"):
        HttpReader(url).read("nothing.json")


def test_paths_escaping_the_bundle_are_refused(served: tuple[str, Path, Verifier]) -> None:
    """The reader never asks for a path outside the bundle."""
    url, _, _ = served
    with pytest.raises(FetchError, match="not a relative bundle path"):
        HttpReader(url).read("../etc/passwd")


def test_spawned_workers_use_the_definition_the_main_process_read(
    served: tuple[str, Path, Verifier], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where fork is unavailable, workers get the definition bytes from the main process, not from the mirror."""
    import multiprocessing

    url, _, key = served
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    report = verify(open_reader(url), key, 2)
    assert report.ok, report.failures


@pytest.mark.parametrize("split", [1, 3, 7, 1000])
def test_stream_comparison_ignores_chunk_boundaries(split: int) -> None:
    """Results are compared as streams whatever the pieces each side produces."""
    from actas.core.verify import _compare_streams

    data = bytes(range(256)) * 4

    def pieces(blob: bytes, size: int) -> Iterator[bytes]:
        return iter([blob[i : i + size] for i in range(0, len(blob), size)])

    assert _compare_streams(pieces(data, split), pieces(data, 5)) is None
    altered = data[:500] + b"\xff" + data[501:]
    assert "at byte 500" in str(_compare_streams(pieces(altered, split), pieces(data, 5)))
    assert "length" in str(_compare_streams(pieces(data + b"x", split), pieces(data, 5)))
    assert "length" in str(_compare_streams(pieces(data[:-1], split), pieces(data, 5)))
