// In-browser verification of one acta against the published log (docs/formats.md §2, §3, §7).
// Binds every [data-verify] section; on click runs five steps and stops at the first that fails:
// checkpoint, entry, inclusion, signature, enrollment. Plain ES2020, no libraries, no third-party requests.
"use strict";
(() => {
  const STEPS = ["checkpoint", "entry", "inclusion", "signature", "enrollment"];
  const TILE = 256;
  const enc = new TextEncoder();

  // A failed check: a message key of verify_messages.py and its {placeholders}.
  class Fail extends Error {
    constructor(key, params = {}) {
      super(key);
      Object.assign(this, { key, params });
    }
  }
  const check = (condition, key, params) => { if (!condition) throw new Fail(key, params); };
  const ok = (key, params) => ({ key, params }); // a passed step's detail
  const whole = (n) => Number.isSafeInteger(n) && n >= 0;

  // ---- bytes, base64, hashes
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
    return out;
  };
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const hex = (bytes) => Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join("");
  const lastIndexOf = (hay, needle) => {
    let i = hay.length - needle.length;
    while (i >= 0 && !needle.every((x, j) => hay[i + j] === x)) i--;
    return i;
  };
  // null instead of an exception: text that is not UTF-8 (a byte-order mark is kept, so it is refused later),
  // or that is not JSON.
  const orNull = (f) => (x) => {
    try {
      return f(x);
    } catch {
      return null;
    }
  };
  const utf8 = orNull((bytes) => new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes));
  const parseJson = orNull((text) => JSON.parse(text));
  // Strict standard padded base64 (§2): null on stray characters, bad padding, non-zero spare bits or wrong length.
  const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  function b64(text, length) {
    if (typeof text !== "string" || !B64.test(text)) return null;
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    if (btoa(String.fromCharCode(...bytes)) !== text) return null;
    return length === undefined || bytes.length === length ? bytes : null;
  }
  const sha256 = async (...parts) => new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
  const leafHash = (entry) => sha256(Uint8Array.of(0), entry);
  const nodeHash = (left, right) => sha256(Uint8Array.of(1), left, right);

  // ---- keys and signatures (§2)
  // A C2SP verifier key string name+hash8+base64(0x01 ‖ pub) whose key id matches; null if malformed.
  async function parseKey(text) {
    const m = typeof text === "string" && /^([^+\s]+)\+([0-9a-f]{8})\+(\S+)$/u.exec(text);
    const key = m && b64(m[3], 33);
    if (!key || key[0] !== 1) return null;
    const id = (await sha256(enc.encode(m[1]), Uint8Array.of(0x0a), key)).subarray(0, 4);
    return hex(id) === m[2] ? { name: m[1], id, pub: key.subarray(1), text } : null;
  }
  // Ed25519 with WebCrypto: false for a bad signature; Fail("no_ed25519") where the browser lacks it.
  async function ed25519(pub, signature, message) {
    const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]).catch((e) => {
      if (e && e.name === "NotSupportedError") throw new Fail("no_ed25519");
    });
    return key ? crypto.subtle.verify({ name: "Ed25519" }, key, signature, message).catch(() => false) : false;
  }

  // ---- the signed checkpoint (§7.4)
  // Parse a checkpoint note, check the authority's signature over its text and its origin; return size and root.
  async function openCheckpoint(raw, origin, authority) {
    const text = raw.length <= 1 << 20 ? utf8(raw) : null;
    const cut = text === null ? -1 : text.lastIndexOf("\n\n"); // the text ends at the note's last empty line
    check(cut > 0 && text.endsWith("\n") && !/[\u0000-\u0009\u000b-\u001f]/.test(text), "note_malformed");
    const body = text.slice(0, cut + 1);
    const lines = text.slice(cut + 2, -1).split("\n");
    check(!body.endsWith("\n\n") && lines.length <= 100, "note_malformed");
    const signatures = lines.map((line) => {
      const m = /^\u2014 ([^+\s]+) (\S+)$/u.exec(line);
      const bytes = m && b64(m[2]);
      check(bytes && bytes.length >= 5, "note_malformed");
      return { name: m[1], bytes };
    });
    // Signatures by other keys (witness cosignatures) are ignored, as the signed-note spec requires.
    const mine = signatures.filter((s) => s.name === origin && equal(s.bytes.subarray(0, 4), authority.id));
    check(mine.length > 0, "no_signature", { key: `${origin}+${hex(authority.id)}` });
    check(mine.length === 1, "duplicate_signature");
    const sig = mine[0].bytes;
    const signed = raw.subarray(0, enc.encode(body).length); // the raw bytes of the text, final newline included
    check(sig.length === 68 && (await ed25519(authority.pub, sig.subarray(4), signed)), "bad_signature");
    const [found, sizeText, rootText] = body.slice(0, -1).split("\n");
    check(found === origin, "origin_mismatch", { found, origin });
    const root = b64(rootText, 32);
    const size = /^(0|[1-9][0-9]{0,15})$/.test(sizeText || "") ? Number(sizeText) : -1;
    check(whole(size) && root, "checkpoint_malformed");
    return { size, root };
  }

  // ---- tiles (§7.2, §7.3) and Merkle proofs (§7.1)
  // Path and width of tile `index` of a level holding `count` hashes (or entries): 1234067 → x001/x234/067.
  function tileOf(level, index, count) {
    const three = (n) => String(n % 1000).padStart(3, "0");
    let name = three(index);
    for (let n = Math.floor(index / 1000); n > 0; n = Math.floor(n / 1000)) name = `x${three(n)}/${name}`;
    const width = index < Math.floor(count / TILE) ? TILE : count % TILE;
    return { path: `log/tile/${level}/${name}${width < TILE ? `.p/${width}` : ""}`, width };
  }
  // Fetches files under base, each at most once.
  function fetcher(base) {
    const cache = new Map();
    return (path) => {
      if (!cache.has(path)) cache.set(path, download(new URL(path, base), path));
      return cache.get(path);
    };
  }
  async function download(url, path) {
    const response = await fetch(url, { cache: "no-cache", credentials: "omit" }).catch((e) => {
      throw new Fail("fetch_failed", { path, detail: String((e && e.message) || e) });
    });
    check(response.ok, "fetch_failed", { path, detail: `HTTP ${response.status}` });
    return new Uint8Array(await response.arrayBuffer());
  }

  // The tree of `size` leaves as the published tiles give it.
  function treeOf(get, size) {
    // Entry `leaf`, from its bundle of uint16 big-endian length-prefixed entries.
    async function entry(leaf) {
      const { path, width } = tileOf("entries", Math.floor(leaf / TILE), size);
      const bundle = await get(path);
      const entries = [];
      for (let at = 0, n = 0; at < bundle.length; at += 2 + n) {
        n = at + 2 <= bundle.length ? (bundle[at] << 8) | bundle[at + 1] : Infinity;
        check(at + 2 + n <= bundle.length, "bundle_malformed", { path });
        entries.push(bundle.subarray(at + 2, at + 2 + n));
      }
      check(entries.length === width, "bundle_malformed", { path });
      return entries[leaf % TILE];
    }
    // Hash of the complete subtree of leaves [i·2^k, (i+1)·2^k): 2^(k mod 8) hashes of tile level ⌊k/8⌋, folded.
    async function perfect(k, i) {
      const [level, count] = [Math.floor(k / 8), 2 ** (k % 8)];
      const first = i * count;
      const { path, width } = tileOf(level, Math.floor(first / TILE), Math.floor(size / TILE ** level));
      const tile = await get(path);
      check(tile.length === width * 32, "tile_malformed", { path });
      const at = (first % TILE) * 32;
      let row = Array.from({ length: count }, (_, j) => tile.subarray(at + j * 32, at + j * 32 + 32));
      while (row.length > 1) {
        row = await Promise.all(row.filter((_, j) => j % 2 === 0).map((left, j) => nodeHash(left, row[2 * j + 1])));
      }
      return row[0];
    }
    return { size, entry, perfect };
  }

  // Largest power of two below n (n ≥ 2), with its exponent.
  function split(n) {
    let [k, bits] = [1, 0];
    while (k * 2 < n) [k, bits] = [k * 2, bits + 1];
    return [k, bits];
  }
  // MTH of leaves [lo, hi), lo aligned as in every RFC 6962 range: its complete subtrees, left to right, folded.
  async function rangeHash(tree, lo, hi) {
    const parts = [];
    for (let bits = 52; bits >= 0; bits--) {
      if (hi - lo < 2 ** bits) continue;
      parts.push(await tree.perfect(bits, lo / 2 ** bits));
      lo += 2 ** bits;
    }
    let h = parts.pop();
    while (parts.length) h = await nodeHash(parts.pop(), h);
    return h;
  }
  // RFC 6962 audit path of `index`, from the leaf's sibling upward (as actas.core.merkle.inclusion_proof).
  async function inclusionProof(tree, index) {
    const path = [];
    let [lo, hi] = [0, tree.size];
    while (hi - lo > 1) {
      const [k, bits] = split(hi - lo);
      const left = index < lo + k; // the leaf is in the left subtree: the sibling is the right range, else the left
      path.push(left ? await rangeHash(tree, lo + k, hi) : await tree.perfect(bits, lo / k));
      [lo, hi] = left ? [lo, lo + k] : [lo + k, hi];
    }
    return path.reverse();
  }
  // RFC 9162 §2.1.3.2, halving by division: bit operators are 32-bit in JavaScript.
  async function verifyInclusion(leaf, index, size, proof, root) {
    check(whole(index) && whole(size) && index < size, "leaf_outside", { leaf: index, size });
    check(leaf.length === 32 && proof.every((p) => p.length === 32), "proof_malformed");
    let [fn, sn, r] = [index, size - 1, leaf];
    for (const p of proof) {
      check(sn !== 0, "proof_malformed");
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        while (fn % 2 === 0 && fn !== 0) [fn, sn] = [fn / 2, Math.floor(sn / 2)];
      } else r = await nodeHash(r, p);
      [fn, sn] = [Math.floor(fn / 2), Math.floor(sn / 2)];
    }
    check(sn === 0, "proof_malformed");
    check(equal(r, root), "root_mismatch");
  }

  // ---- entries (§3)
  // Canonical JSON (§1) of a parsed value: JSON.stringify escapes strings as RFC 8785 does; integers only.
  const canonical = (v) =>
    Array.isArray(v) ? `[${v.map(canonical).join(",")}]`
      : v !== null && typeof v === "object"
        ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`
        : typeof v === "number" && !Number.isSafeInteger(v) ? "\u0000" : JSON.stringify(v);

  // An entry of the tree: a canonical JSON object of the type wanted and of this election, with its leaf hash.
  async function loggedEntry(ctx, leaf, type) {
    const bytes = await ctx.tree.entry(leaf);
    const text = utf8(bytes);
    const value = text === null ? null : parseJson(text);
    check(value !== null && typeof value === "object" && !Array.isArray(value),
      "entry_not_json", { leaf });
    check(canonical(value) === text, "entry_not_canonical", { leaf });
    check(value.type === type, "wrong_type", { leaf, found: String(value.type), want: type });
    check(value.election === ctx.data.origin, "wrong_election", { leaf, found: String(value.election) });
    return { bytes, value, hash: await leafHash(bytes) };
  }
  // The entry's signature over context ‖ "\n" ‖ the entry bytes without their ,"sig":"…" member (§3).
  async function entrySigned(entry, pub, context) {
    const { bytes, value } = entry;
    const sig = b64(value.sig, 64);
    const member = enc.encode(`,"sig":"${value.sig}"`);
    const at = lastIndexOf(bytes, enc.encode(',"sig":"'));
    check(sig && at >= 0 && equal(bytes.subarray(at, at + member.length), member), "sig_malformed");
    const signed = concat(bytes.subarray(0, at), bytes.subarray(at + member.length));
    return ed25519(pub, sig, concat(enc.encode(`${context}\n`), signed));
  }
  async function included(ctx, leaf, hash) {
    const proof = await inclusionProof(ctx.tree, leaf);
    await verifyInclusion(hash, leaf, ctx.tree.size, proof, ctx.root);
    return proof.length;
  }

  // ---- the five steps; each returns its detail or throws Fail
  const STEP = {
    async checkpoint(ctx) {
      const d = ctx.data;
      const fields = ["base", "origin", "authority", "mesa", "contest", "device"];
      const enroll = whole(d.enroll_leaf) || d.enroll_leaf === -1 || d.enroll_leaf === null; // -1, null: none found
      check(fields.every((k) => typeof d[k] === "string") && whole(d.leaf) && enroll, "bad_page_data");
      check(globalThis.crypto && crypto.subtle, "no_webcrypto");
      ctx.authority = await parseKey(d.authority);
      check(ctx.authority, "bad_authority_key");
      await ed25519(ctx.authority.pub, new Uint8Array(64), new Uint8Array(0)); // Fail("no_ed25519") up front
      ctx.get = fetcher(new URL(d.base, document.baseURI));
      const { size, root } = await openCheckpoint(await ctx.get("log/checkpoint"), d.origin, ctx.authority);
      check(d.leaf < size, "leaf_outside", { leaf: d.leaf, size });
      check(!whole(d.enroll_leaf) || d.enroll_leaf < size, "leaf_outside", { leaf: d.enroll_leaf, size });
      [ctx.tree, ctx.root] = [treeOf(ctx.get, size), root];
      return ok("checkpoint_ok", { size, root: hex(root) });
    },
    async entry(ctx) {
      const d = ctx.data;
      ctx.acta = await loggedEntry(ctx, d.leaf, "acta");
      const { mesa, contest } = ctx.acta.value;
      const found = { found_mesa: String(mesa), found_contest: String(contest) };
      check(mesa === d.mesa && contest === d.contest, "wrong_acta", { leaf: d.leaf, mesa, contest, ...found });
      const shown = ctx.acta.value && pageCounts(ctx.section);
      if (shown) {
        // What passes must be what the page shows: every count on it against the logged acta.
        for (const [field, cells] of Object.entries(shown)) {
          const logged = [].concat(ctx.acta.value[field]);
          const bad = cells.length !== logged.length ? 0 : cells.findIndex((n, i) => n !== logged[i]);
          const where = cells.length > 1 ? `${field}[${bad + 1}]` : field;
          check(bad < 0, "page_mismatch", { field: where, shown: String(cells[bad]), logged: String(logged[bad]) });
        }
        return ok("entry_ok_page", { leaf: d.leaf, mesa, contest, hash: hex(ctx.acta.hash) });
      }
      return ok("entry_ok", { leaf: d.leaf, mesa, contest, hash: hex(ctx.acta.hash) });
    },
    async inclusion(ctx) {
      const length = await included(ctx, ctx.data.leaf, ctx.acta.hash);
      return ok("inclusion_ok", { leaf: ctx.data.leaf, size: ctx.tree.size, length });
    },
    async signature(ctx) {
      const device = ctx.acta.value.device;
      check(device === ctx.data.device, "device_mismatch", { found: String(device), device: ctx.data.device });
      const key = await parseKey(device);
      check(key, "bad_device_key", { device });
      check(await entrySigned(ctx.acta, key.pub, "actas/v1/acta"), "bad_acta_signature");
      return ok("signature_ok", { device });
    },
    async enrollment(ctx) {
      const [leaf, mesa] = [ctx.data.enroll_leaf, ctx.data.mesa];
      check(whole(leaf), "not_enrolled", { mesa });
      const enroll = await loggedEntry(ctx, leaf, "enroll");
      await included(ctx, leaf, enroll.hash);
      const { device, mesas } = enroll.value;
      check(device === ctx.acta.value.device, "enroll_wrong_device", { leaf, found: String(device) });
      check(Array.isArray(mesas) && mesas.includes(mesa), "enroll_wrong_mesa", { leaf, mesa });
      check(await entrySigned(enroll, ctx.authority.pub, "actas/v1/enroll"), "bad_enroll_signature", { leaf });
      return ok("enrollment_ok", { leaf, device, mesa });
    },
  };

  // ---- the page
  function translate(messages, key, params = {}) {
    const text = typeof messages[key] === "string" ? messages[key] : key;
    const has = (name) => Object.prototype.hasOwnProperty.call(params, name);
    return text.replace(/\{(\w+)\}/g, (m, name) => (has(name) ? String(params[name]) : m));
  }

  // The counts the page shows for this acta (cells marked data-count in the acta's section), as integers;
  // null on a page that shows none (a bare verification page).
  function pageCounts(section) {
    const acta = section && section.closest("section.acta");
    if (!acta) return null;
    const counts = {};
    for (const cell of acta.querySelectorAll("[data-count]")) {
      const text = cell.textContent.replace(/[\s.,\u00a0\u202f']/g, "");
      const value = /^-?[0-9]+$/.test(text) ? Number(text) : NaN;
      (counts[cell.dataset.count] = counts[cell.dataset.count] || []).push(value);
    }
    return counts;
  }

  async function run(section, button) {
    let data = parseJson(section.querySelector(".verify-data").textContent);
    data = data !== null && typeof data === "object" ? data : {}; // the first step reports bad_page_data
    // The page may carry its messages; the published site ships every language's in front of this script.
    const shipped = (globalThis.actasVerifyMessages || {})[document.documentElement.lang];
    const messages = data.messages !== null && typeof data.messages === "object" ? data.messages : shipped || {};
    const t = (key, params) => translate(messages, key, params);
    const [steps, result] = [section.querySelector(".verify-steps"), section.querySelector(".verify-result")];
    button.disabled = true;
    section.setAttribute("aria-busy", "true");
    steps.replaceChildren();
    result.textContent = "";
    for (const name of ["data-result", "data-failed-step"]) result.removeAttribute(name);
    const ctx = { data, section };
    let failed = null;
    for (const name of STEPS) {
      const li = document.createElement("li");
      li.dataset.step = name;
      let outcome;
      try {
        outcome = await STEP[name](ctx);
        li.dataset.status = "pass";
      } catch (e) {
        outcome = e instanceof Fail ? e : new Fail("unexpected", { detail: String((e && e.message) || e) });
        [li.dataset.status, li.dataset.reason, failed] = ["fail", outcome.key, name];
      }
      li.textContent = `${t(`step_${name}`)}: ${t(outcome.key, outcome.params)}`;
      steps.append(li);
      if (failed) break;
    }
    // The sentence first, then the attributes a reader (or a test) waits for.
    result.textContent = failed ? t("result_fail", { step: t(`step_${failed}`) }) : t("result_pass");
    if (failed) result.dataset.failedStep = failed;
    result.dataset.result = failed ? "fail" : "pass";
    section.removeAttribute("aria-busy");
    button.disabled = false;
  }

  function bind() {
    for (const section of document.querySelectorAll("[data-verify]")) {
      const button = section.querySelector(".verify-button");
      const parts = [".verify-data", ".verify-steps", ".verify-result"].map((s) => section.querySelector(s));
      if (!button || parts.includes(null)) continue; // not the contract's markup: leave it alone
      button.addEventListener("click", () => button.disabled || run(section, button));
    }
  }

  // For auditors (and tests) who want the pieces without the page: functions over published bytes.
  globalThis.actasVerify = Object.freeze({
    fetcher, openCheckpoint, parseKey, tileOf, treeOf, leafHash, inclusionProof, verifyInclusion, b64, hex, Fail,
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", bind);
  else bind();
})();
