"""The published results site in real headless Chromium, served as-is by a static server on loopback."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import expect

from actas.core.entries import ActaEntry, parse_entry
from actas.core.tiles import ENTRIES, TILE_WIDTH, TileCoord, tile_path
from actas.publish.bundle import publish_bundle
from actas.simulate.run import simulate
from actas.storage.layout import DataDir
from actas.storage.log_files import logged_entries
from tests.site.conftest import StaticServer, Watched, screenshot

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
MESA = "010101001.01"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated 300-mesa election, logged and published with its site."""
    root = tmp_path_factory.mktemp("site")
    simulate(root / "data", mesas=300, seed=21)
    publish_bundle(DataDir(root / "data"), root / "site")
    return root / "site"


def _acta_leaf(site: Path, mesa: str) -> int:
    size = int((site / "log" / "checkpoint").read_text().split("\n")[1])
    for leaf, data in enumerate(logged_entries(site / "log", size)):
        entry = parse_entry(data).entry
        if isinstance(entry, ActaEntry) and entry.acta.mesa == mesa:
            return leaf
    raise AssertionError(f"no acta for {mesa}")


def _no_horizontal_scroll(watched: Watched) -> None:
    width = watched.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{watched.page.url}: {width}px wide on a {PHONE['width']}px screen"


def test_drill_down_from_national_to_a_mesa(
    site: Path, static_server: Callable[[Path], StaticServer], new_page: Callable[..., Watched]
) -> None:
    server = static_server(site)
    watched = new_page(viewport=DESKTOP)
    page = watched.page
    page.goto(server.url)  # the root chooses a language (a refresh, no JavaScript needed)
    page.wait_for_url("**/es/index.html")
    levels = []
    for _ in range(4):  # estado → municipio → parroquia → centro, always the first child
        page.locator("table.children tbody a").first.click()
        levels.append(page.locator("h1 small").inner_text())
        expect(page.locator("nav.crumbs li")).to_have_count(len(levels) + 1)
    assert levels == ["estado", "municipio", "parroquia", "centro"]
    page.locator("table.mesas tbody a").first.click()
    expect(page.locator("h1")).to_contain_text("Mesa")
    expect(page.locator("section.acta .status").first).to_be_visible()
    page.locator("nav.languages a[hreflang=en]").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert "/en/mesa/" in page.url
    watched.assert_clean()


def test_search_finds_a_mesa_by_code_and_a_centre_by_part_of_its_name(
    site: Path, static_server: Callable[[Path], StaticServer], new_page: Callable[..., Watched]
) -> None:
    server = static_server(site)
    watched = new_page(viewport=DESKTOP)
    page = watched.page
    page.goto(server.url + "en/index.html")
    page.fill("#q", MESA)
    hit = page.locator(f".search-results a[href$='mesa/{MESA}.html']")
    expect(hit).to_have_count(1)
    centre = (site / "en" / "area" / "010101001.html").read_text()
    name = centre.split("<h1>", 1)[1].split(" <small>", 1)[0]  # e.g. "Escuela Nacional Centro 010101001"
    partial = name.split()[0][:4].lower() + " " + name.split()[-1][:6]  # "escu 010101": prefixes, no case
    page.fill("#q", partial)
    expect(page.locator(".search-results a[href$='area/010101001.html']")).to_have_count(1)
    page.locator(".search-results a[href$='area/010101001.html']").click()
    expect(page.locator("h1")).to_contain_text(name)
    watched.assert_clean()


def _verify(page_url: str, new_page: Callable[..., Watched]) -> Watched:
    watched = new_page(viewport=DESKTOP)
    watched.page.goto(page_url)
    watched.page.locator(".verify-button").first.click()
    watched.page.wait_for_selector(".verify-result[data-result]")
    return watched


def test_an_acta_verifies_in_the_browser(
    site: Path, static_server: Callable[[Path], StaticServer], new_page: Callable[..., Watched]
) -> None:
    server = static_server(site)
    watched = _verify(server.url + f"es/mesa/{MESA}.html", new_page)
    page = watched.page
    expect(page.locator(".verify-result")).to_have_attribute("data-result", "pass")
    steps = page.locator(".verify-steps li")
    assert [steps.nth(i).get_attribute("data-step") for i in range(steps.count())] == [
        "checkpoint",
        "entry",
        "inclusion",
        "signature",
        "enrollment",
    ]
    assert all(steps.nth(i).get_attribute("data-status") == "pass" for i in range(steps.count()))
    screenshot(watched, "acta-desktop")
    watched.assert_clean()


def test_one_altered_byte_in_the_entry_bundle_fails_verification_and_names_the_step(
    site: Path,
    tmp_path: Path,
    static_server: Callable[[Path], StaticServer],
    new_page: Callable[..., Watched],
) -> None:
    copy = tmp_path / "mirror"
    shutil.copytree(site, copy)
    leaf = _acta_leaf(site, MESA)
    size = int((site / "log" / "checkpoint").read_text().split("\n")[1])
    index = leaf // TILE_WIDTH
    width = TILE_WIDTH if index < size // TILE_WIDTH else size % TILE_WIDTH
    bundle = copy / "log" / tile_path(TileCoord(ENTRIES, index, width))
    data = bytearray(bundle.read_bytes())
    # Skip to the acta's entry (uint16 length prefixes) and change one character of its signature: the entry
    # still parses and shows the same counts, but it is no longer the entry the signed tree holds.
    at = 0
    for _ in range(leaf % TILE_WIDTH):
        at += 2 + int.from_bytes(data[at : at + 2], "big")
    offset = data.index(b'"sig":"', at + 2) + len(b'"sig":"')
    data[offset] = ord("B") if data[offset] != ord("B") else ord("C")
    bundle.write_bytes(bytes(data))
    server = static_server(copy)
    watched = _verify(server.url + f"en/mesa/{MESA}.html", new_page)
    result = watched.page.locator(".verify-result")
    expect(result).to_have_attribute("data-result", "fail")
    expect(result).to_have_attribute("data-failed-step", "inclusion")
    failed = watched.page.locator(".verify-steps li[data-status=fail]")
    expect(failed).to_have_count(1)
    assert failed.get_attribute("data-step") == "inclusion"
    watched.assert_clean()


def test_phone_pages_do_not_scroll_sideways_and_screenshots_are_kept(
    site: Path, static_server: Callable[[Path], StaticServer], new_page: Callable[..., Watched]
) -> None:
    server = static_server(site)
    for path, shot in (
        ("es/index.html", "national"),
        ("es/area/01.html", ""),
        ("es/area/010101001.html", ""),
        (f"es/mesa/{MESA}.html", "acta"),
        ("es/data.html", ""),
        ("es/verify.html", ""),
    ):
        watched = new_page(viewport=PHONE, is_mobile=True)
        watched.page.goto(server.url + path)
        _no_horizontal_scroll(watched)
        if shot:
            screenshot(watched, f"{shot}-phone")
        watched.assert_clean()
    desktop = new_page(viewport=DESKTOP)
    desktop.page.goto(server.url + "es/index.html")
    screenshot(desktop, "national-desktop")
    desktop.assert_clean()


def test_keyboard_alone_reaches_and_runs_the_verify_action(
    site: Path, static_server: Callable[[Path], StaticServer], new_page: Callable[..., Watched]
) -> None:
    server = static_server(site)
    watched = new_page(viewport=DESKTOP)
    page = watched.page
    page.goto(server.url + f"pt/mesa/{MESA}.html")
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('verify-button')"):
            break
    else:
        pytest.fail("Tab never reached the verify button")
    page.keyboard.press("Enter")
    expect(page.locator(".verify-result")).to_have_attribute("data-result", "pass")
    watched.assert_clean()


def test_pages_read_without_javascript(
    site: Path, static_server: Callable[[Path], StaticServer], new_page: Callable[..., Watched]
) -> None:
    server = static_server(site)
    watched = new_page(viewport=DESKTOP, java_script_enabled=False)
    page = watched.page
    page.goto(server.url + "en/index.html")
    expect(page.locator("table.options tbody tr")).to_have_count(10)
    expect(page.locator("section.contest svg").first).to_be_visible()
    page.locator("table.children tbody a").first.click()
    expect(page.locator("h1 small")).to_have_text("estado")
    page.goto(server.url + f"en/mesa/{MESA}.html")
    expect(page.locator("table.tickets tbody tr").first).to_be_visible()
    watched.assert_clean()


def test_the_how_to_verify_page_gives_the_exact_command_for_this_site(
    site: Path, static_server: Callable[[Path], StaticServer], new_page: Callable[..., Watched]
) -> None:
    server = static_server(site)
    watched = new_page(viewport=DESKTOP)
    watched.page.goto(server.url + "en/verify.html")
    key = (site / "keys" / "authority.vkey").read_text().strip()
    expect(watched.page.locator("code.verify-command").first).to_have_text(f"actas verify {server.url} --key {key}")
    watched.assert_clean()


def test_verification_fails_when_the_page_shows_counts_other_than_the_logged_acta(
    site: Path, tmp_path: Path, static_server: Callable[[Path], StaticServer], new_page: Callable[..., Watched]
) -> None:
    copy = tmp_path / "mirror"
    shutil.copytree(site, copy)
    page = copy / "en" / "mesa" / f"{MESA}.html"
    html = page.read_text(encoding="utf-8")
    cell = '<td class="num" data-count="null">'
    start = html.index(cell) + len(cell)
    shown = html[start : html.index("<", start)]
    page.write_text(html[:start] + str(int(shown.replace(",", "")) + 100) + html[html.index("<", start) :])
    server = static_server(copy)
    watched = _verify(server.url + f"en/mesa/{MESA}.html", new_page)
    result = watched.page.locator(".verify-result")
    expect(result).to_have_attribute("data-failed-step", "entry")
    failed = watched.page.locator(".verify-steps li[data-status=fail]")
    assert failed.get_attribute("data-reason") == "page_mismatch"
    expect(failed).to_contain_text("null")
    watched.assert_clean()


def test_the_mesa_page_prints_the_authority_key_the_check_trusts(site: Path) -> None:
    key = (site / "keys" / "authority.vkey").read_text().strip()
    for lang in ("es", "en", "pt"):
        html = (site / lang / "mesa" / f"{MESA}.html").read_text(encoding="utf-8")
        assert '<p class="authority-key">' in html
        assert f"<code>{key}</code>" in html
