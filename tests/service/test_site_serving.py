"""`actas serve DATA_DIR --site SITE`: the published site beside the API, with caching fit for a CDN."""

from __future__ import annotations

import http.client
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from actas.publish.bundle import publish_bundle
from actas.service.site_files import IMMUTABLE, SHORT
from actas.storage.layout import DataDir
from tests.service.conftest import Election, LiveServer

Serve = Callable[..., LiveServer]

PROBLEM = "application/problem+json"
OUTSIDE = b"a file beside the site, never served"


@pytest.fixture(scope="module")
def site(election_template: Election, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template election (enrollments logged, no acta yet) published; files beside it that must stay unserved."""
    base = tmp_path_factory.mktemp("site")
    data = base / "data"
    shutil.copytree(election_template.root, data)
    site = base / "www" / "site"
    publish_bundle(DataDir(data), site)
    (base / "www" / "x").write_bytes(OUTSIDE)  # what /es/../../x would name if ".." were followed
    (base / "www" / "secret.txt").write_bytes(OUTSIDE)
    (base / "etc").mkdir()
    (base / "etc" / "passwd").write_bytes(OUTSIDE)  # what /..%2f..%2fetc/passwd would name
    (site / "es" / "leak.html").symlink_to(base / "www" / "secret.txt")  # a link out of the site
    return site


@pytest.fixture
def server(serve: Serve, site: Path) -> LiveServer:
    """The service over a fresh copy of the same election, serving the site."""
    return serve(site=site)


def raw_get(server: LiveServer, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET a path exactly as written (no client-side normalisation of '..' or '%2f')."""
    parts = urlsplit(server.url)
    assert parts.hostname is not None
    assert parts.port is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_pages_are_served_with_short_caching(server: LiveServer, site: Path) -> None:
    """/es/index.html, / and /es/ answer 200 text/html with the site's bytes, cached for seconds."""
    for path, file in (("/es/index.html", "es/index.html"), ("/", "index.html"), ("/es/", "es/index.html")):
        answer = server.client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert answer.headers["cache-control"] == SHORT == "public, max-age=10", path
        assert answer.content == (site / file).read_bytes(), path


def test_hashed_assets_are_cached_for_a_year(server: LiveServer, site: Path) -> None:
    """A content-hashed asset is immutable and cached for a year, with its own content type."""
    assets = sorted((site / "assets").iterdir())
    assert assets
    for asset in assets:
        answer = server.client.get(f"/assets/{asset.name}")
        assert answer.status_code == 200, asset.name
        assert answer.headers["cache-control"] == IMMUTABLE == "public, max-age=31536000, immutable"
        assert answer.content == asset.read_bytes()
        expected = {".css": "text/css", ".js": "text/javascript"}[asset.suffix]
        assert answer.headers["content-type"].startswith(expected), asset.name


def test_checkpoint_comes_from_the_service(server: LiveServer, election: Election, site: Path) -> None:
    """/log/checkpoint is the service's live checkpoint (not the site's copy), uncached, announcing /v1/events."""
    published = (site / "log" / "checkpoint").read_bytes()
    answer = server.client.post(
        "/v1/actas:batch", content=b"\n".join(election.actas), headers={"content-type": "application/x-ndjson"}
    )
    assert answer.status_code == 200
    size = 1 + 2 * len(election.actas)  # election entry, enrollments, actas
    server.wait_for_size(size)
    answer = server.client.get("/log/checkpoint")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["x-actas-events"] == "/v1/events"
    assert answer.content.split(b"\n")[1] == str(size).encode()
    assert published.split(b"\n")[1] == str(1 + len(election.actas)).encode()


@pytest.mark.parametrize(
    "path",
    ["/..%2f..%2fetc/passwd", "/es/../../x", "/..%2fsecret.txt", "/es/%2e%2e/%2e%2e/x", "/es/leak.html"],
)
def test_nothing_outside_the_site_is_served(server: LiveServer, path: str) -> None:
    """A path that climbs out of the site (or a link pointing out of it) is a 404 problem, never a file."""
    status, headers, body = raw_get(server, path)
    assert status == 404, (path, body[:200])
    assert headers["content-type"].startswith(PROBLEM)
    assert OUTSIDE not in body


def test_a_missing_file_is_a_404_problem(server: LiveServer) -> None:
    """A page the site does not have answers 404 with a problem+json body."""
    answer = server.client.get("/es/area/no-such-area.html")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["status"] == 404


def test_api_is_still_the_service_and_its_schema_has_no_site_route(server: LiveServer) -> None:
    """/v1/results and /openapi.json are the API's; the schema does not list the site's catch-all route."""
    results = server.client.get("/v1/results")
    assert results.status_code == 200
    assert results.headers["content-type"].startswith("application/json")
    assert {"checkpoint", "area"} <= results.json().keys()
    schema = server.client.get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/v1/results" in paths
    assert [p for p in paths if "{path" in p and not p.startswith("/log/tile/")] == []
    assert "/" not in paths
