"""For the verify.js browser tests: a published election, mesa pages that follow verify.js's DOM contract, and
what such a page shows once verification ends."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actas.core.entries import ActaEntry, EnrollEntry, parse_entry
from actas.core.keys import Signer
from actas.core.merkle import inclusion_proof, leaf_hash, perfect_hash_from_leaves, root_of
from actas.core.note import Checkpoint, sign_checkpoint
from actas.core.tiles import ENTRIES, TILE_HEIGHT, encode_bundle, tile_path, tiles_for_size
from actas.publish.bundle import publish_bundle
from actas.publish.verify_messages import MESSAGES
from actas.simulate.run import simulate
from actas.storage.layout import DataDir
from actas.storage.log_files import logged_entries
from tests.site.conftest import StaticServer, Watched

ASSETS = Path(__file__).resolve().parents[2] / "src" / "actas" / "publish" / "assets"
# The strict policy the site may adopt: no inline script, no third-party anything.
CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data:"
STEPS = ["checkpoint", "entry", "inclusion", "signature", "enrollment"]
EN = MESSAGES["en"]

NewPage = Callable[..., Watched]
Serve = Callable[[Path], StaticServer]


@dataclass(frozen=True)
class Acta:
    """Where one mesa's acta and its device's enrollment are in the log."""

    mesa: str
    contest: str
    leaf: int
    enroll_leaf: int
    device: str


@dataclass
class Published:
    """A simulated election published into a site directory, with its log read back."""

    data: DataDir
    site: Path
    origin: str
    authority: str
    entries: list[bytes]
    actas: dict[str, Acta] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Entries in the published checkpoint's tree."""
        return len(self.entries)

    def copy_site(self, to: Path) -> Published:
        """The publication's log copied to ``to``, to alter without touching the shared one (pages are written anew)."""
        shutil.copytree(self.site / "log", to / "log")
        return Published(self.data, to, self.origin, self.authority, list(self.entries), self.actas)


def publish_election(root: Path, mesas: int, seed: int) -> Published:
    """Simulate an election, publish it into root/site and index its actas and enrollments by mesa."""
    summary = simulate(root / "data", mesas=mesas, seed=seed)
    site = root / "site"
    published = publish_bundle(summary.data, site)
    entries = list(logged_entries(summary.data.log, published.size))
    enrolled: dict[str, int] = {}
    out = Published(summary.data, site, summary.election.origin, _authority(summary.data), entries)
    for leaf, data in enumerate(entries):
        entry = parse_entry(data).entry
        if isinstance(entry, EnrollEntry):
            for mesa in entry.mesas:
                enrolled.setdefault(mesa, leaf)
        elif isinstance(entry, ActaEntry):
            acta = entry.acta
            out.actas[acta.mesa] = Acta(acta.mesa, acta.contest, leaf, enrolled[acta.mesa], acta.device)
    return out


def _authority(data: DataDir) -> str:
    return data.authority_vkey.read_text(encoding="utf-8").strip()


def write_page(published: Published, mesa: str, lang: str = "en", **override: Any) -> str:
    """Write <site>/<lang>/mesa/<mesa>.html for mesa's acta (fields overridable) and return its site path."""
    acta = published.actas[mesa]
    fields: dict[str, Any] = {
        "messages": MESSAGES[lang],
        "base": "../../",
        "origin": published.origin,
        "authority": published.authority,
        "leaf": acta.leaf,
        "mesa": acta.mesa,
        "contest": acta.contest,
        "device": acta.device,
        "enroll_leaf": acta.enroll_leaf,
    }
    fields.update(override)
    data = json.dumps(fields, ensure_ascii=False, sort_keys=True).replace("</", "<\\/")  # as a page writer must
    assets = published.site / "assets"
    assets.mkdir(exist_ok=True)
    shutil.copyfile(ASSETS / "verify.js", assets / "verify.js")
    page = f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<link rel="icon" href="data:,">
<title>Mesa {acta.mesa}</title>
</head>
<body>
<h1>Mesa {acta.mesa}</h1>
<section class="verify" data-verify>
  <script type="application/json" class="verify-data">{data}</script>
  <button type="button" class="verify-button">Verify</button>
  <ol class="verify-steps" aria-live="polite"></ol>
  <p class="verify-result" role="status"></p>
</section>
<script src="../../assets/verify.js" defer></script>
</body>
</html>
"""
    relative = f"{lang}/mesa/{acta.mesa}.html"
    target = published.site / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return relative


def relog(published: Published, entries: list[bytes]) -> None:
    """Rewrite the site's log as the authority would have published these entries: tiles and a signed checkpoint.

    Lets a test publish a log the writer would refuse (an entry with a bad signature) yet whose tree is sound.
    """
    authority = Signer.parse(published.data.authority_key.read_text(encoding="utf-8").strip())
    log = published.site / "log"
    shutil.rmtree(log / "tile")
    hashes = [leaf_hash(e) for e in entries]
    perfect = perfect_hash_from_leaves(hashes)
    for coord in tiles_for_size(len(entries)):
        first = coord.index * 256
        if coord.level == ENTRIES:
            content = encode_bundle(entries[first : first + coord.width])
        else:
            content = b"".join(perfect(TILE_HEIGHT * coord.level, first + i) for i in range(coord.width))
        target = log / tile_path(coord)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    checkpoint = Checkpoint(published.origin, len(entries), root_of(hashes))
    (log / "checkpoint").write_bytes(sign_checkpoint(checkpoint, authority))
    published.entries = list(entries)


def swap_signature(entry: bytes, donor: bytes) -> bytes:
    """The entry with the (well-formed, same-length) signature of another entry in place of its own."""
    mine, theirs = parse_entry(entry).entry.signature, parse_entry(donor).entry.signature
    out = entry.replace(base64.b64encode(mine), base64.b64encode(theirs))
    assert out != entry
    return out


# ---- opening a page, running the verification, reading what it shows


def mesa(published: Published, i: int) -> str:
    """The mesa of the i-th acta in log order."""
    return list(published.actas)[i]


@dataclass(frozen=True)
class Outcome:
    """What the section shows once verification ends."""

    steps: list[tuple[str, str, str | None, str]]  # (data-step, data-status, data-reason, text)
    result: str
    failed_step: str | None
    text: str
    watched: Watched

    def failed(self, step: str, reason: str) -> None:
        """The run failed at step for reason, every earlier step passed, and nothing after it ran."""
        at = STEPS.index(step)
        assert [s[:3] for s in self.steps] == [(n, "pass", None) for n in STEPS[:at]] + [(step, "fail", reason)]
        assert (self.result, self.failed_step) == ("fail", step)
        assert self.text == EN["result_fail"].format(step=EN[f"step_{step}"])
        assert self.steps[-1][3].startswith(EN[f"step_{step}"] + ": ")
        assert "{" not in self.steps[-1][3]  # every placeholder of the reason was filled
        self.watched.assert_clean()

    def passed(self, messages: dict[str, str] = EN) -> None:
        """All five steps passed, with the localized sentence."""
        assert [s[:3] for s in self.steps] == [(n, "pass", None) for n in STEPS]
        assert (self.result, self.failed_step, self.text) == ("pass", None, messages["result_pass"])
        for (name, _, _, text), key in zip(self.steps, STEPS, strict=True):
            assert text.startswith(messages[f"step_{key}"] + ": "), (name, text)
            assert "{" not in text, (name, text)
        self.watched.assert_clean()


READ = """() => {
  const r = document.querySelector('.verify-result');
  return {steps: [...document.querySelectorAll('.verify-steps li')].map(
            (li) => [li.dataset.step, li.dataset.status, li.dataset.reason ?? null, li.textContent]),
          result: r.dataset.result, failed: r.dataset.failedStep ?? null, text: r.textContent};
}"""


def outcome(watched: Watched) -> Outcome:
    """Wait for the result and read the section."""
    watched.page.wait_for_selector(".verify-result[data-result]", state="attached", timeout=30_000)
    got = watched.page.evaluate(READ)
    steps = [tuple(s) for s in got["steps"]]
    return Outcome(steps, got["result"], got["failed"], got["text"], watched)


def verify(new_page: NewPage, server: StaticServer, page: str, init_script: str | None = None) -> Outcome:
    """Open a mesa page, click verify and return what it shows."""
    watched = new_page()
    if init_script:
        watched.page.add_init_script(init_script)
    watched.page.goto(server.url + page)
    watched.page.click(".verify-button")
    return outcome(watched)


def run(new_page: NewPage, static_server: Serve, published: Published, i: int = 0, **override: Any) -> Outcome:
    """Verify the i-th acta of a publication on a fresh page (page fields overridable)."""
    page = write_page(published, mesa(published, i), **override)
    return verify(new_page, static_server(published.site), page)


def bare_page(directory: Path) -> str:
    """A page in directory that only loads verify.js (which exposes window.actasVerify)."""
    (directory / "assets").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ASSETS / "verify.js", directory / "assets" / "verify.js")
    (directory / "bare.html").write_text(
        '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>verify.js</title>'
        '<script src="assets/verify.js"></script>\n',
        encoding="utf-8",
    )
    return "bare.html"


# ---- in-page scripts over window.actasVerify, and the Python side they are compared with

PROVE = """async ([key, origin, checkpoints, leaves]) => {
  const V = actasVerify;
  const get = V.fetcher(new URL("./", location.href));
  const authority = await V.parseKey(key);
  const out = [];
  for (const name of checkpoints) {
    const { size, root } = await V.openCheckpoint(await get(name), origin, authority);
    const tree = V.treeOf(get, size);
    for (const leaf of leaves ?? [...Array(size).keys()]) {
      const hash = await V.leafHash(await tree.entry(leaf));
      const proof = await V.inclusionProof(tree, leaf);
      await V.verifyInclusion(hash, leaf, size, proof, root);
      out.push([size, leaf, V.hex(hash), proof.map(V.hex)]);
    }
  }
  return out;
}"""


def python_proofs(entries: list[bytes], size: int, leaves: Iterable[int]) -> list[list[Any]]:
    """[size, leaf, leaf hash, proof] rows as actas.core.merkle computes them."""
    hashes = [leaf_hash(e) for e in entries[:size]]
    perfect = perfect_hash_from_leaves(hashes)
    return [[size, i, hashes[i].hex(), [h.hex() for h in inclusion_proof(i, size, perfect)]] for i in leaves]


VERIFY_CASES = """async (cases) => {
  const V = actasVerify;
  const bytes = (s) => (s === null ? new Uint8Array(0) : Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));
  const out = [];
  for (const c of cases) {
    try {
      await V.verifyInclusion(bytes(c.leafHash), c.leafIdx, c.treeSize, (c.proof ?? []).map(bytes), bytes(c.root));
      out.push(false);
    } catch (e) {
      if (!(e instanceof V.Fail)) throw e;
      out.push(true);
    }
  }
  return out;
}"""
