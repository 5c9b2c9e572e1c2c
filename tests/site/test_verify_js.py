"""verify.js in real Chromium: the five steps pass on a published election, and each tampering fails its step."""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from actas.core.keys import Signer
from actas.core.merkle import inclusion_proof, leaf_hash, perfect_hash_from_leaves
from actas.core.note import add_signatures, cosign_checkpoint
from actas.core.tiles import TileCoord, decode_bundle, encode_bundle, tile_path
from actas.publish.verify_messages import LANGUAGES, MESSAGES
from tests.site.verify_harness import (
    ASSETS,
    EN,
    PROVE,
    STEPS,
    VERIFY_CASES,
    NewPage,
    Published,
    Serve,
    bare_page,
    mesa,
    outcome,
    publish_election,
    python_proofs,
    relog,
    run,
    swap_signature,
    verify,
    write_page,
)

MESAS = 300  # 601 entries: two tile levels, full and partial tiles, subtrees of 256 and 512 leaves
SEED = 7


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """One simulated election, published, for the whole module (the tampering tests alter copies)."""
    return publish_election(tmp_path_factory.mktemp("verify-js"), MESAS, SEED)


@pytest.fixture
def copy(published: Published, tmp_path: Path) -> Published:
    """A private copy of the publication to alter."""
    return published.copy_site(tmp_path / "site")


# ---- passing


def test_all_five_steps_pass_and_each_file_is_fetched_once(
    published: Published, new_page: NewPage, static_server: Serve
) -> None:
    server = static_server(published.site)
    result = verify(new_page, server, write_page(published, mesa(published, 0)))
    result.passed()
    acta = published.actas[mesa(published, 0)]
    hashes = [leaf_hash(e) for e in published.entries]
    proof = inclusion_proof(acta.leaf, published.size, perfect_hash_from_leaves(hashes))
    root = (published.site / "log" / "checkpoint").read_text().split("\n")[2]
    texts = [s[3] for s in result.steps]
    assert texts[0] == "Signed checkpoint: " + EN["checkpoint_ok"].format(
        size=published.size, root=base64.b64decode(root).hex()
    )
    assert texts[1] == "Acta in the log: " + EN["entry_ok"].format(
        leaf=acta.leaf, mesa=acta.mesa, contest=acta.contest, hash=hashes[acta.leaf].hex()
    )
    assert texts[2].endswith(EN["inclusion_ok"].format(leaf=acta.leaf, size=published.size, length=len(proof)))
    assert texts[3].endswith(EN["signature_ok"].format(device=acta.device))
    assert texts[4].endswith(EN["enrollment_ok"].format(leaf=acta.enroll_leaf, device=acta.device, mesa=acta.mesa))
    fetched = [p for p in server.requested if "/log/" in p]
    assert "/log/checkpoint" in fetched
    assert len(fetched) == len(set(fetched)), fetched


# Acta leaves 301…600 and enrollment leaves 1…300 of a 601-entry tree: the edges of tiles and subtrees.
@pytest.mark.parametrize(
    ("i", "where"),
    [
        (0, "first acta; enrollment leaf 1"),
        (210, "acta leaf 511, last of the first 512-leaf subtree"),
        (211, "acta leaf 512, first of the partial right edge"),
        (254, "enrollment leaf 255, last of entry bundle 000"),
        (255, "enrollment leaf 256, first of entry bundle 001"),
        (299, "acta leaf 600, last leaf of the partial tile 002.p/89; enrollment leaf 300"),
    ],
)
def test_leaves_at_tile_and_subtree_edges_pass(
    published: Published, new_page: NewPage, static_server: Serve, i: int, where: str
) -> None:
    acta = published.actas[mesa(published, i)]
    assert f"leaf {acta.leaf}" in where or f"leaf {acta.enroll_leaf}" in where
    result = run(new_page, static_server, published, i)
    result.passed()
    hashes = [leaf_hash(e) for e in published.entries]
    length = len(inclusion_proof(acta.leaf, published.size, perfect_hash_from_leaves(hashes)))
    assert result.steps[2][3].endswith(f" {length} hashes)")


def test_witness_cosignatures_on_the_checkpoint_are_ignored(
    copy: Published, new_page: NewPage, static_server: Serve
) -> None:
    # A cosigned checkpoint as the log publishes it: the authority's line first, then witnesses' (type 0x04).
    path = copy.site / "log" / "checkpoint"
    witness = Signer("witness.example.org/observers", bytes(range(1, 33)))
    path.write_bytes(add_signatures(path.read_bytes(), [cosign_checkpoint(path.read_bytes(), witness, 1722211200)]))
    assert path.read_text().count("\n— ") == 2
    run(new_page, static_server, copy, 0).passed()


@pytest.mark.parametrize("lang", ["es", "pt"])
def test_other_languages_pass_with_their_own_sentences(
    published: Published, new_page: NewPage, static_server: Serve, lang: str
) -> None:
    run(new_page, static_server, published, 1, lang=lang).passed(MESSAGES[lang])


def test_button_is_disabled_while_running_and_reachable_by_keyboard(
    published: Published, new_page: NewPage, static_server: Serve
) -> None:
    server = static_server(published.site)
    watched = new_page()
    watched.page.goto(server.url + write_page(published, mesa(published, 2)))
    watched.page.keyboard.press("Tab")
    assert watched.page.evaluate("document.activeElement.className") == "verify-button"
    watched.page.keyboard.press("Enter")
    outcome(watched).passed()
    assert watched.page.evaluate("document.querySelector('.verify-button').disabled") is False
    # Run again: the button is disabled at once, and the second run replaces the first's steps.
    during = watched.page.evaluate(
        """() => {
          const b = document.querySelector('.verify-button');
          b.click();
          return [b.disabled, document.querySelector('.verify-result').dataset.result ?? null,
                  document.querySelectorAll('.verify-steps li').length];
        }"""
    )
    assert during == [True, None, 0]
    outcome(watched).passed()
    assert watched.page.evaluate("document.querySelectorAll('.verify-steps li').length") == 5


# ---- failing: each tampering is caught by its step


def test_altered_acta_entry_fails_inclusion(copy: Published, new_page: NewPage, static_server: Serve) -> None:
    # The entry still parses and names the page's mesa and contest, so `entry` passes; its leaf hash changed,
    # so the root computed from it and the (untouched) tiles differs from the signed root.
    acta = copy.actas[mesa(copy, 5)]
    entry = copy.entries[acta.leaf]
    altered = re.sub(
        rb'"registered":(\d*)(\d)',
        lambda m: b'"registered":' + m[1] + str((int(m[2]) + 1) % 10).encode(),
        entry,
        count=1,
    )
    bundle = copy.site / "log" / tile_path(TileCoord(-1, acta.leaf // 256))
    data = bundle.read_bytes()
    assert data.count(entry) == 1
    assert len(altered) == len(entry)
    assert altered != entry
    bundle.write_bytes(data.replace(entry, altered))
    run(new_page, static_server, copy, 5).failed("inclusion", "root_mismatch")


@pytest.mark.parametrize(
    ("alter", "reason"),
    [
        (lambda e: b'{ "' + e[2:], "entry_not_canonical"),  # JSON, but with a space the canonical form lacks
        (lambda e: e[:-1], "entry_not_json"),  # cut short
    ],
)
def test_malformed_acta_entry_fails_entry(
    copy: Published, new_page: NewPage, static_server: Serve, alter: Callable[[bytes], bytes], reason: str
) -> None:
    acta = copy.actas[mesa(copy, 5)]
    coord = TileCoord(-1, acta.leaf // 256)
    bundle = copy.site / "log" / tile_path(coord)
    entries = decode_bundle(bundle.read_bytes(), coord.width)
    entries[acta.leaf % 256] = alter(entries[acta.leaf % 256])
    bundle.write_bytes(encode_bundle(entries))  # length prefixes still right: only the entry is wrong
    run(new_page, static_server, copy, 5).failed("entry", reason)


def test_truncated_entry_bundle_fails_entry(copy: Published, new_page: NewPage, static_server: Serve) -> None:
    bundle = copy.site / "log" / tile_path(TileCoord(-1, copy.actas[mesa(copy, 5)].leaf // 256))
    bundle.write_bytes(bundle.read_bytes()[:-3])
    run(new_page, static_server, copy, 5).failed("entry", "bundle_malformed")


def test_missing_tile_fails_and_names_the_file(copy: Published, new_page: NewPage, static_server: Serve) -> None:
    (copy.site / "log" / "tile" / "1" / "000.p" / "2").unlink()
    result = run(new_page, static_server, copy, 0)
    assert result.steps[-1][3].endswith(EN["fetch_failed"].format(path="log/tile/1/000.p/2", detail="HTTP 404"))
    # The browser itself logs the 404 (no script can silence that); the script adds nothing.
    assert all(e.startswith("Failed to load resource") for e in result.watched.console_errors)
    result.watched.console_errors.clear()
    result.failed("inclusion", "fetch_failed")


def _flip_signature(text: str) -> str:
    body, line = text.rsplit("\n— ", 1)
    name, encoded = line.rstrip("\n").split(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[20] ^= 1  # inside the Ed25519 signature, after the 4-byte key id
    return f"{body}\n— {name} {base64.b64encode(bytes(raw)).decode()}\n"


def _other_root(text: str) -> str:
    lines = text.split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("alter", "reason"),
    [
        (_flip_signature, "bad_signature"),
        (_other_root, "bad_signature"),  # the text the signature covers changed
        (lambda text: text + "— " + text.rsplit("\n— ", 1)[1], "duplicate_signature"),  # the key signed twice
        (lambda text: text.replace("\n\n", "\n"), "note_malformed"),  # no empty line before the signatures
    ],
)
def test_altered_checkpoint_fails_checkpoint(
    copy: Published, new_page: NewPage, static_server: Serve, alter: Callable[[str], str], reason: str
) -> None:
    path = copy.site / "log" / "checkpoint"
    path.write_text(alter(path.read_text()))
    run(new_page, static_server, copy, 0).failed("checkpoint", reason)


def test_without_ed25519_in_the_browser_fails_checkpoint(
    published: Published, new_page: NewPage, static_server: Serve
) -> None:
    hide = """{
      const importKey = crypto.subtle.importKey.bind(crypto.subtle);
      crypto.subtle.importKey = (format, key, algorithm, ...rest) =>
        (algorithm && (algorithm.name || algorithm)) === "Ed25519"
          ? Promise.reject(new DOMException("Unrecognized algorithm name", "NotSupportedError"))
          : importKey(format, key, algorithm, ...rest);
    }"""
    page = write_page(published, mesa(published, 0))
    result = verify(new_page, static_server(published.site), page, init_script=hide)
    result.failed("checkpoint", "no_ed25519")
    assert result.steps[0][3] == f"Signed checkpoint: {EN['no_ed25519']}"


@pytest.mark.parametrize("level", [0, 1])
def test_altered_hash_tile_on_the_path_fails_inclusion(
    copy: Published, new_page: NewPage, static_server: Serve, level: int
) -> None:
    acta = copy.actas[mesa(copy, 0)]  # leaf 301: its sibling leaf 300 (level 0) and subtree [0, 256) (level 1)
    assert acta.leaf == 301
    tile = copy.site / "log" / ("tile/0/001" if level == 0 else "tile/1/000.p/2")
    position = (acta.leaf ^ 1) % 256 if level == 0 else 0
    data = bytearray(tile.read_bytes())
    data[position * 32 + 7] ^= 0x80
    tile.write_bytes(bytes(data))
    run(new_page, static_server, copy, 0).failed("inclusion", "root_mismatch")


def test_truncated_hash_tile_fails_inclusion(copy: Published, new_page: NewPage, static_server: Serve) -> None:
    tile = copy.site / "log" / "tile/0/001"
    tile.write_bytes(tile.read_bytes()[:-1])
    run(new_page, static_server, copy, 0).failed("inclusion", "tile_malformed")


def _another_key(p: Published) -> str:
    return str(Signer(p.origin, bytes(range(32))).verifier)  # same name, so only its key id differs


@pytest.mark.parametrize(
    ("field", "value", "step", "reason"),
    [
        ("authority", _another_key, "checkpoint", "no_signature"),
        ("authority", lambda p: p.authority[:-4], "checkpoint", "bad_authority_key"),
        ("leaf", lambda p: str(p.actas[mesa(p, 0)].leaf), "checkpoint", "bad_page_data"),
        ("leaf", lambda p: p.size, "checkpoint", "leaf_outside"),
        ("leaf", lambda p: p.actas[mesa(p, 1)].leaf, "entry", "wrong_acta"),
        ("leaf", lambda p: p.actas[mesa(p, 0)].enroll_leaf, "entry", "wrong_type"),
        ("device", lambda p: p.actas[mesa(p, 1)].device, "signature", "device_mismatch"),
        ("enroll_leaf", lambda p: p.actas[mesa(p, 1)].enroll_leaf, "enrollment", "enroll_wrong_device"),
        ("enroll_leaf", lambda p: p.actas[mesa(p, 0)].leaf, "enrollment", "wrong_type"),
        ("enroll_leaf", lambda p: -1, "enrollment", "not_enrolled"),  # the page writer found no enrollment
        ("enroll_leaf", lambda p: None, "enrollment", "not_enrolled"),
    ],
)
def test_page_data_that_does_not_match_the_log_fails_its_step(
    published: Published,
    new_page: NewPage,
    static_server: Serve,
    field: str,
    value: Callable[[Published], object],
    step: str,
    reason: str,
) -> None:
    run(new_page, static_server, published, 0, **{field: value(published)}).failed(step, reason)


@pytest.mark.parametrize(
    ("forge", "step", "reason"),
    [
        (None, None, None),  # the control: the rewritten log itself is sound
        ("leaf", "signature", "bad_acta_signature"),
        ("enroll_leaf", "enrollment", "bad_enroll_signature"),
    ],
)
def test_logged_entry_with_another_entrys_signature_fails_its_step(
    copy: Published,
    new_page: NewPage,
    static_server: Serve,
    forge: str | None,
    step: str | None,
    reason: str | None,
) -> None:
    # A tree the authority signed around an entry bearing another entry's signature: only the signature checks
    # can catch it.
    acta, donor = copy.actas[mesa(copy, 3)], copy.actas[mesa(copy, 4)]
    entries = list(copy.entries)
    if forge is not None:
        at, by = getattr(acta, forge), getattr(donor, forge)
        entries[at] = swap_signature(entries[at], entries[by])
    relog(copy, entries)
    result = run(new_page, static_server, copy, 3)
    if step is None or reason is None:
        result.passed()
    else:
        result.failed(step, reason)


# ---- the JavaScript's Merkle code against the Python implementation and the shared vectors


def test_inclusion_proofs_from_tiles_equal_the_python_ones(
    published: Published, new_page: NewPage, static_server: Serve, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    shutil.copytree(published.site / "log", site / "log")
    server = static_server(site)
    watched = new_page()
    watched.page.goto(server.url + bare_page(site))
    # Tile and subtree edges of the 601-leaf tree, and a spread between them.
    edges = {0, 1, 127, 128, 255, 256, 257, 383, 384, 511, 512, 513, 575, 576, 591, 592, 599, 600}
    leaves = sorted(edges | set(range(0, published.size, 9)))
    got = watched.page.evaluate(PROVE, [published.authority, published.origin, ["log/checkpoint"], leaves])
    assert got == python_proofs(published.entries, published.size, leaves)
    watched.assert_clean()


def test_golden_tlog_tiles_log_every_size_and_leaf(
    vectors: Path, new_page: NewPage, static_server: Serve, tmp_path: Path
) -> None:
    golden = vectors / "tlog-tiles-golden"
    site = tmp_path / "golden"
    shutil.copytree(golden / "log", site / "log")
    key = next(line.split()[1] for line in (golden / "keys.txt").read_text().splitlines() if line.startswith("public"))
    origin = key.split("+")[0]
    entries = decode_bundle((golden / "log" / "tile" / "entries" / "000.p" / "15").read_bytes(), 15)
    server = static_server(site)
    watched = new_page()
    watched.page.goto(server.url + bare_page(site))
    names = [f"log/checkpoint.{n}" for n in range(16)]
    got = watched.page.evaluate(PROVE, [key, origin, names, None])
    assert got == [row for n in range(16) for row in python_proofs(entries, n, range(n))]
    assert len(got) == 120
    watched.assert_clean()


def test_tile_paths_equal_the_python_ones(new_page: NewPage, static_server: Serve, tmp_path: Path) -> None:
    # (level, index, hashes or entries at that level): full and partial, one to three path elements.
    cases = [(-1, 0, 17), (-1, 1, 601), (-1, 2, 601), (0, 999, 256_000), (1, 1000, 256_001)]
    cases.append((2, 1_234_067, 1_234_067 * 256 + 64))
    server = static_server(tmp_path)
    watched = new_page()
    watched.page.goto(server.url + bare_page(tmp_path))
    got = watched.page.evaluate(
        "(cases) => cases.map(([l, index, count]) => actasVerify.tileOf(l < 0 ? 'entries' : l, index, count))",
        cases,
    )
    want = []
    for level, index, count in cases:
        width = 256 if index < count // 256 else count % 256
        want.append({"path": "log/" + tile_path(TileCoord(level, index, width)), "width": width})
    assert got == want
    assert want[-1]["path"] == "log/tile/2/x001/x234/067.p/64"


def test_inclusion_verification_matches_the_shared_vectors(
    vectors: Path, new_page: NewPage, static_server: Serve, tmp_path: Path
) -> None:
    files = sorted((vectors / "merkle" / "inclusion").rglob("*.json"))
    cases = [json.loads(f.read_text()) for f in files]
    for case in cases:  # JavaScript numbers: indexes beyond 2**53 arrive as (unsafe) floats, as from JSON
        for field in ("leafIdx", "treeSize"):
            case[field] = float(case[field]) if case[field] > 2**53 else case[field]
    server = static_server(tmp_path)
    watched = new_page()
    watched.page.goto(server.url + bare_page(tmp_path))
    got = watched.page.evaluate(VERIFY_CASES, cases)
    assert {f.relative_to(vectors).as_posix(): g for f, g in zip(files, got, strict=True)} == {
        f.relative_to(vectors).as_posix(): c["wantErr"] for f, c in zip(files, cases, strict=True)
    }
    assert len(cases) > 90
    assert any(c["wantErr"] for c in cases)
    assert not all(c["wantErr"] for c in cases)
    watched.assert_clean()


# ---- the messages and the script itself (no browser)

JS = (ASSETS / "verify.js").read_text(encoding="utf-8")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def test_every_language_has_the_same_keys_and_placeholders() -> None:
    assert tuple(MESSAGES) == LANGUAGES
    for lang in LANGUAGES:
        assert MESSAGES[lang].keys() == EN.keys(), lang
        for key, text in MESSAGES[lang].items():
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(EN[key])), (lang, key)
            assert text, (lang, key)
            assert text.strip() == text, (lang, key)
            assert "<" not in text, (lang, key)
    for lang in ("es", "pt"):  # translated, not copied
        same = [k for k in EN if MESSAGES[lang][k] == EN[k]]
        assert same == [], (lang, same)


def test_every_key_the_script_uses_has_messages_and_every_message_is_used() -> None:
    used = set(re.findall(r'(?:\bcheck\([^;]*?,\s*|\bFail\(|\bok\(|\bt\()"([a-z0-9_]+)"', JS))
    used |= {f"step_{name}" for name in STEPS}  # built as `step_${name}`
    assert "root_mismatch" in used
    assert "checkpoint_ok" in used
    assert used == set(EN)


def test_script_is_plain_small_and_self_contained() -> None:
    assert len(JS.splitlines()) <= 400
    for banned in ("console.", "innerHTML", "eval(", "new Function", "import ", "require(", "http://", "https://"):
        assert banned not in JS, banned
    # ES2020 at most: none of the later syntax or built-ins (private fields, logical assignment, .at(), …).
    for later in ("#", "??=", "||=", "&&=", ".at(", "Object.hasOwn(", "replaceAll(", "findLast", "structuredClone"):
        assert later not in JS, later
    assert re.search(r"\d_\d", JS) is None  # numeric separators
    assert re.search(r"\bon[a-z]+\s*=", JS) is None  # no inline handlers set from script either
