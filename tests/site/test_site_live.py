"""`actas serve DATA_DIR --site SITE`: the published pages update live from the service's /v1/events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from actas.log.open import append_entries
from actas.publish.bundle import publish_bundle
from actas.service.runtime import ServiceConfig
from actas.simulate.run import simulate
from actas.storage.layout import DataDir
from tests.service.conftest import LiveServer
from tests.site.conftest import Watched


@pytest.fixture
def live_site(tmp_path: Path) -> Iterator[tuple[LiveServer, list[bytes]]]:
    """A service over an election with half its actas logged and published; the other half still to come."""
    actas_file = tmp_path / "actas.ndjson"
    simulate(tmp_path / "data", 40, 3, actas_out=actas_file)
    actas = actas_file.read_bytes().splitlines()
    data = DataDir(tmp_path / "data")
    append_entries(data, actas[:20])
    publish_bundle(data, tmp_path / "site")
    live = LiveServer(ServiceConfig(data_dir=data.root, site=tmp_path / "site"))
    yield live, actas[20:]
    live.stop()


def test_the_national_page_updates_live_as_actas_arrive(
    live_site: tuple[LiveServer, list[bytes]], new_page: Callable[..., Watched]
) -> None:
    live, rest = live_site
    watched = new_page()
    page = watched.page
    page.goto(live.url + "/en/index.html")
    coverage_before = page.locator("[data-field=coverage]").first.inner_text()
    cast = page.locator("[data-field=cast]").first
    published = cast.inner_text()
    expect(page.locator(".binding .latest")).to_contain_text("Updated live")  # the event stream is connected
    # Mark the leader cell, so the test sees that the live update writes it (the leader may not change).
    page.evaluate("document.querySelector('[data-field=leader]').textContent = 'stale'")
    answer = live.client.post("/v1/actas:batch", content=b"\n".join(rest) + b"\n")
    assert answer.status_code == 200, answer.text
    expect(cast).not_to_have_text(published, timeout=15_000)
    totals = live.client.get("/v1/results").json()["area"]
    expect(cast).to_have_text(f"{totals['cast']:,}")
    assert "20 of 40" in coverage_before
    expect(page.locator("[data-field=coverage]").first).to_contain_text("40 of 40")
    body = live.client.get("/v1/results").json()
    leader = body["options"][max(range(len(totals["votes"])), key=lambda i: (totals["votes"][i], -i))]
    names = {o["id"]: o["name"] for o in _options(live)}
    expect(page.locator("[data-field=leader]").first).to_have_text(names[leader])
    expect(page.locator(".binding .as-of")).to_be_hidden()  # its "no later entry changes them" no longer holds
    expect(page.locator(".live-note")).to_be_visible()
    watched.assert_clean()


def _options(live: LiveServer) -> list[dict[str, str]]:
    election = json.loads((live.runtime.data.election).read_bytes())
    options: list[dict[str, str]] = election["contests"][0]["options"]
    return options


def test_the_site_is_served_with_caching_fit_for_a_cdn(live_site: tuple[LiveServer, list[bytes]]) -> None:
    live, _ = live_site
    page = live.client.get("/es/index.html")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "public, max-age=10"
    asset = next(part for part in page.text.split('"') if part.startswith("../assets/style."))
    cached = live.client.get("/es/" + asset)
    assert cached.status_code == 200
    assert cached.headers["cache-control"] == "public, max-age=31536000, immutable"
    checkpoint = live.client.get("/log/checkpoint")
    assert checkpoint.headers["x-actas-events"] == "/v1/events"
    # Traversal is tested with raw request paths in tests/service/test_site_serving.py (httpx normalises "..").
    redirected = live.client.get("/es")
    assert redirected.status_code == 301
    assert redirected.headers["location"] == "/es/"
    assert live.client.head("/es/index.html").status_code == 200
