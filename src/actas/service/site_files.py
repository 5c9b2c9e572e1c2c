"""Serve a published results site (``actas serve DATA_DIR --site SITE``) with caching fit for a CDN in front.

Content-hashed assets, tiles and images never change at their path: cached for a year, immutable. Pages, results
and search shards change with each publication: cached for seconds. The service's own routes (the live log,
/v1/…) come first; the site answers every other GET.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response

from actas.errors import NotFoundError

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=10"
_IMMUTABLE_PREFIXES = ("assets/", "log/tile/", "images/")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".parquet": "application/vnd.apache.parquet",
    ".vkey": "text/plain; charset=utf-8",
    ".note": "text/plain; charset=utf-8",
}


def site_file(root: Path, path: str) -> Path:
    """The file a request path names inside the site (a directory means its index.html); else NotFoundError."""
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") or "\\" in p or "\x00" in p for p in parts):
        raise NotFoundError(f"/{path}: no such file")
    target = root.joinpath(*parts)
    if target.is_dir():
        if path and not path.endswith("/"):
            raise _Redirect(f"/{path}/")  # relative links of the directory's index resolve from the directory
        target = target / "index.html"
    if not target.is_file() or not target.resolve().is_relative_to(root.resolve()):
        raise NotFoundError(f"/{path}: no such file")
    return target


class _Redirect(Exception):
    """A directory asked for without its trailing slash."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def media_type(path: Path) -> str:
    """The Content-Type of a site file."""
    if path.suffix in _TYPES:
        return _TYPES[path.suffix]
    if path.name in ("MANIFEST", "checkpoint"):
        return "text/plain; charset=utf-8"
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def cache_control(path: str) -> str:
    """How long caches may keep a site file."""
    return IMMUTABLE if path.lstrip("/").startswith(_IMMUTABLE_PREFIXES) else SHORT


def mount_site(app: FastAPI, root: Path) -> None:
    """Answer every GET that no service route takes with the site's file."""

    @app.api_route("/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def site(path: str) -> Response:
        try:
            target = site_file(root, path)
        except _Redirect as redirect:
            return RedirectResponse(redirect.location, status_code=301, headers={"Cache-Control": SHORT})
        return FileResponse(target, media_type=media_type(target), headers={"Cache-Control": cache_control(path)})
