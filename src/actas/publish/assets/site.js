// actas results site: shows the latest signed checkpoint and, when the page is served by `actas serve`
// (which names its event stream in an X-Actas-Events header on /log/checkpoint), updates figures live.
"use strict";
(function () {
  // The how-to-verify page: put this site's own address into the commands (without JavaScript: <URL>).
  for (const code of document.querySelectorAll("code.verify-command")) {
    const root = new URL("../", window.location.href).href;
    code.textContent = code.textContent.replace("<URL>", root);
  }
  const binding = document.querySelector("[data-checkpoint-url]");
  if (!binding) return;
  const latest = binding.querySelector(".latest");
  const area = binding.getAttribute("data-live-area") || "";
  const fill = (template, size) => template.replace("{size}", Number(size).toLocaleString(document.documentElement.lang));

  function showCheckpoint(text) {
    const lines = text.split("\n");
    const size = lines[1];
    if (latest && /^[0-9]+$/.test(size)) latest.textContent = fill(latest.getAttribute("data-latest-template"), size);
  }

  function percent(part, whole) {
    if (whole <= 0) return "–";
    return (part / whole).toLocaleString(document.documentElement.lang, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
  }

  let wanted = 0; // the newest checkpoint asked for: an older answer arriving late is dropped

  async function refresh(size) {
    if (size <= wanted) return;
    wanted = size;
    const lang = document.documentElement.lang;
    const updates = [];
    for (const section of document.querySelectorAll("section.contest[data-contest]")) {
      const contest = section.getAttribute("data-contest");
      const url = "/v1/results?area=" + encodeURIComponent(area) + "&contest=" + encodeURIComponent(contest);
      const response = await fetch(url, { cache: "no-store" });
      if (!response.ok) return;
      updates.push([section, (await response.json()).area]);
    }
    if (size !== wanted) return;
    for (const [section, totals] of updates) {
      const set = (name, value) => {
        const cell = section.querySelector('[data-field="' + name + '"]');
        if (cell) cell.textContent = value;
      };
      const valid = totals.votes.reduce((a, b) => a + b, 0);
      totals.votes.forEach((votes, i) => {
        set("votes-" + i, votes.toLocaleString(lang));
        set("share-" + i, percent(votes, valid));
      });
      set("null", totals.null.toLocaleString(lang));
      set("blank", totals.blank.toLocaleString(lang));
      set("cast", totals.cast.toLocaleString(lang));
      set("turnout", percent(totals.cast, totals.registered_counted));
      const names = Array.from(section.querySelectorAll("table.options tbody th"), (th) => th.textContent);
      const best = totals.votes.reduce((top, v, i) => (v > totals.votes[top] ? i : top), 0);
      if (valid > 0 && names[best]) set("leader", names[best]);
      const coverage = section.querySelector('[data-field="coverage"]');
      if (coverage && coverage.getAttribute("data-template")) {
        coverage.textContent = coverage.getAttribute("data-template")
          .replace("{received}", totals.actas.toLocaleString(lang))
          .replace("{expected}", totals.mesas.toLocaleString(lang))
          .replace("{pct}", percent(totals.actas, totals.mesas));
      }
      const bars = section.querySelector(".chart.bars");
      if (bars) bars.hidden = true; // drawn from the published figures; the table above it is live
    }
    const asOf = binding.querySelector(".as-of");
    if (asOf) asOf.hidden = true;
    const note = document.querySelector(".live-note");
    if (note) note.hidden = false;
    if (latest) latest.textContent = fill(latest.getAttribute("data-live-template"), size);
  }

  fetch(binding.getAttribute("data-checkpoint-url"), { cache: "no-store" })
    .then(async (response) => {
      if (!response.ok) return;
      showCheckpoint(await response.text());
      const events = response.headers.get("X-Actas-Events");
      if (!events || !window.EventSource) return;
      const source = new EventSource(events);
      source.addEventListener("checkpoint", (event) => {
        let size = null;
        try { size = JSON.parse(event.data).size; } catch (e) { return; }
        if (typeof size === "number") refresh(size).catch(() => {});
      });
    })
    .catch(() => {});
})();
