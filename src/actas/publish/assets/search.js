// Site search: fetches only the shards of search/ a query needs and lists what matches.
// The index format and the lookup are specified in actas/publish/search_index.py; its tests mirror this file.
(() => {
  "use strict";

  const MAX_SHOWN = 50;
  const DEBOUNCE_MS = 150;
  const MARKS = /\p{M}/gu;
  const OTHER = /[^\p{L}\p{N}._-]+/gu;
  const EDGE_JOINERS = /^[._-]+|[._-]+$/g;
  const JOINERS = /[._-]+/;
  const NUMBER = /\p{N}/u;
  const SAFE = /^[a-z0-9]$/;
  // Python's str.casefold goes beyond lower-casing for these (beside ß and final sigma).
  const CYRILLIC = {
    "\u1c80": "\u0432", "\u1c81": "\u0434", "\u1c82": "\u043e", "\u1c83": "\u0441", "\u1c84": "\u0442",
    "\u1c85": "\u0442", "\u1c86": "\u044a", "\u1c87": "\u0463", "\u1c88": "\ua64b",
  };
  const DEFAULT_MESSAGES = { results: "{n}", more: "…", none: "-", kinds: {} };

  const stripMarks = (text) => text.normalize("NFKD").replace(MARKS, "");
  const casefold = (text) => text.toLowerCase()
    .replace(/ß/g, "ss")
    .replace(/ς/g, "σ")
    .replace(/[\u13f8-\u13fd\uab70-\uabbf]/g, (c) => c.toUpperCase())
    .replace(/[\u1c80-\u1c88]/g, (c) => CYRILLIC[c]);

  const normalise = (text) => stripMarks(casefold(stripMarks(text))).replace(OTHER, " ").trim();

  const tokens = (text) => {
    const out = [];
    for (const raw of normalise(text).split(" ")) {
      const word = raw.replace(EDGE_JOINERS, "");
      if (!word) continue;
      if (NUMBER.test(word)) out.push(word);
      else for (const part of word.split(JOINERS)) if (part) out.push(part);
    }
    return out;
  };

  const encode = (prefix) =>
    Array.from(prefix, (c) => (SAFE.test(c) ? c : `_${c.codePointAt(0).toString(16)}_`)).join("");
  const leafFile = (prefix) => `t-${encode(prefix)}.json`;
  const exactFile = (prefix, page) => `x-${encode(prefix)}-${page}.json`;

  const jsonCache = new Map();
  const getJson = (url) => {
    if (!jsonCache.has(url)) {
      const pending = fetch(url).then((response) => {
        if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
        return response.json();
      });
      // A failed fetch is forgotten so that a later query tries again.
      pending.catch(() => jsonCache.delete(url));
      jsonCache.set(url, pending);
    }
    return jsonCache.get(url);
  };

  const indexCache = new Map();
  const loadIndex = (base) => {
    if (!indexCache.has(base)) {
      const pending = getJson(`${base}index.json`).then((raw) => ({
        cap: raw.cap,
        nodes: new Map(Object.entries(raw.nodes)),
        exact: new Map(Object.entries(raw.exact)),
        partial: new Set(raw.partial),
        kinds: raw.kinds,
        urls: new Map(Object.entries(raw.urls)),
      }));
      pending.catch(() => indexCache.delete(base));
      indexCache.set(base, pending);
    }
    return indexCache.get(base);
  };

  // The shards a query token needs: `none` when no indexed token starts with it; `over` when more than `cap`.
  const plan = (index, token) => {
    let prefix = "";
    for (const c of Array.from(token)) {
      if (!index.nodes.get(prefix).includes(c)) return { token, none: true, files: [], over: false, page: null };
      prefix += c;
      if (!index.nodes.has(prefix)) return { token, none: false, files: [leafFile(prefix)], over: false, page: null };
    }
    // The token is a split prefix: its own pages and every shard below it.
    const files = [];
    let over = false;
    for (const [node, children] of index.nodes) {
      if (!node.startsWith(token)) continue;
      if (index.partial.has(node)) over = true;
      for (let page = 0; page < (index.exact.get(node) || 0); page++) files.push(exactFile(node, page));
      for (const c of Array.from(children)) if (!index.nodes.has(node + c)) files.push(leafFile(node + c));
    }
    const page = index.exact.has(token) ? exactFile(token, 0) : null;
    return { token, none: false, files, over: over || files.length > index.cap, page };
  };

  const better = (a, b) => {
    if (a.over !== b.over) return !a.over;
    if (a.files.length !== b.files.length) return a.files.length < b.files.length;
    return Array.from(a.token).length > Array.from(b.token).length;
  };

  const compare = (a, b) => {
    for (let i = 0; i < a.length; i++) {
      if (a[i] < b[i]) return -1;
      if (a[i] > b[i]) return 1;
    }
    return 0;
  };

  // Every item of the shards that the query matches, with its sort key.
  const matches = (index, shards, query) => {
    const whole = query.join(" ");
    const areaLevels = index.kinds.filter((kind) => kind !== "mesa").length;
    const found = new Map();
    for (const shard of shards) {
      for (const [name, contextIndex, members] of shard.g) {
        const nameTokens = tokens(name);
        const normalName = normalise(name);
        for (const [kindIndex, code, ownUrl] of members) {
          const kind = index.kinds[kindIndex];
          if (found.has(`${kind} ${code}`)) continue;
          const codeTokens = tokens(code);
          const own = nameTokens.concat(codeTokens);
          if (!query.every((q) => own.some((t) => t.startsWith(q)))) continue;
          const byCode = query.some((q) => codeTokens.some((t) => t.startsWith(q)));
          const exact = codeTokens.join(" ") === whole;
          const level = kind === "mesa" ? (byCode ? 0 : areaLevels) : kindIndex + (byCode ? 1 : 0);
          const template = index.urls.get(kind);
          const url = ownUrl === undefined && template ? template[0] + code + template[1] : ownUrl;
          found.set(`${kind} ${code}`, {
            kind, code, name, url, context: shard.c[contextIndex],
            key: byCode ? [exact ? 0 : 1, 0, level, code, kind] : [exact ? 0 : 1, 1, level, normalName, name, code, kind],
          });
        }
      }
    }
    return Array.from(found.values()).sort((a, b) => compare(a.key, b.key));
  };

  // What a query finds: {state: "empty" | "none" | "results" | "more", items, total}.
  const search = async (indexBase, text) => {
    const query = tokens(text);
    if (!query.length) return { state: "empty", items: [], total: 0 };
    const index = await loadIndex(indexBase);
    let best = null;
    for (const token of query) {
      const candidate = plan(index, token);
      if (candidate.none) return { state: "none", items: [], total: 0 };
      if (best === null || better(candidate, best)) best = candidate;
    }
    if (best.over) {
      const withPage = query.map((token) => plan(index, token)).filter((p) => p.page !== null);
      if (!withPage.length) return { state: "more", items: [], total: 0 };
      const chosen = withPage.reduce((a, b) => (better(b, a) ? b : a));
      const found = matches(index, [await getJson(indexBase + chosen.page)], query);
      return { state: "more", items: found.slice(0, MAX_SHOWN), total: found.length };
    }
    const shards = await Promise.all(best.files.map((file) => getJson(indexBase + file)));
    const found = matches(index, shards, query);
    return { state: found.length ? "results" : "none", items: found.slice(0, MAX_SHOWN), total: found.length };
  };

  const readMessages = () => {
    const element = document.getElementById("search-messages");
    try {
      return { ...DEFAULT_MESSAGES, ...(element ? JSON.parse(element.textContent) : {}) };
    } catch (error) {
      return DEFAULT_MESSAGES;
    }
  };

  const span = (className, text) => {
    const element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  };

  const render = (box, base, messages, outcome) => {
    box.replaceChildren();
    box.dataset.state = outcome.state;
    if (outcome.state === "empty") return;
    const note = document.createElement("p");
    note.className = "search-count";
    if (outcome.state === "none") note.textContent = messages.none;
    else if (outcome.state === "more") note.textContent = messages.more;
    else note.textContent = messages.results.replace("{n}", String(outcome.total));
    box.append(note);
    if (!outcome.items.length) return;
    const list = document.createElement("ul");
    for (const item of outcome.items) {
      const link = document.createElement("a");
      link.href = base + item.url;
      link.append(
        span("search-kind", (messages.kinds || {})[item.kind] || item.kind), " ",
        span("search-code", item.code), " ",
        span("search-name", item.name),
      );
      if (item.context) link.append(" ", span("search-context", item.context));
      const entry = document.createElement("li");
      entry.append(link);
      list.append(entry);
    }
    box.append(list);
  };

  const resultsBox = (form) => {
    for (let element = form.nextElementSibling; element; element = element.nextElementSibling) {
      if (element.matches(".search-results")) return element;
    }
    return document.querySelector(".search-results");
  };

  // Arrow keys move between the input and the result links; Escape goes back to the input.
  const keyboard = (input, box) => {
    input.addEventListener("keydown", (event) => {
      const first = box.querySelector("a");
      if (event.key === "ArrowDown" && first) {
        event.preventDefault();
        first.focus();
      }
    });
    box.addEventListener("keydown", (event) => {
      const links = Array.from(box.querySelectorAll("a"));
      const at = links.indexOf(document.activeElement);
      if (at < 0) return;
      if (event.key === "ArrowDown" && at + 1 < links.length) links[at + 1].focus();
      else if (event.key === "ArrowUp") (at > 0 ? links[at - 1] : input).focus();
      else if (event.key === "Escape") input.focus();
      else return;
      event.preventDefault();
    });
  };

  const wire = (form, messages) => {
    const input = form.querySelector('input[name="q"]');
    const box = resultsBox(form);
    if (!input || !box) return null;
    const base = form.dataset.base || "";
    const indexBase = form.dataset.index || "search/";
    let timer = 0;
    let latest = 0;
    const run = () => {
      clearTimeout(timer);
      const mine = ++latest;
      box.setAttribute("aria-busy", "true");
      search(indexBase, input.value).then(
        (outcome) => {
          if (mine === latest) render(box, base, messages, outcome);
        },
        () => {
          if (mine === latest) box.dataset.state = "error";
        },
      ).finally(() => {
        if (mine === latest) box.removeAttribute("aria-busy");
      });
    };
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(run, DEBOUNCE_MS);
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      run();
    });
    keyboard(input, box);
    return { input, run };
  };

  const start = () => {
    const messages = readMessages();
    const wired = Array.from(document.querySelectorAll("form[data-search]"), (form) => wire(form, messages));
    const first = wired.find((entry) => entry !== null);
    const query = new URLSearchParams(window.location.search).get("q");
    if (first && query) {
      first.input.value = query;
      first.run();
    }
  };

  // For other scripts and the tests: the tokenisation the index was built with.
  globalThis.actasSearch = Object.freeze({ normalise, tokens });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
