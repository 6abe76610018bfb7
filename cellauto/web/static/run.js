// The run page, live: on every "cellauto:run" event of this run (and after live.js
// reconnects) it refetches the state and timeline fragments and which commands are
// enabled (GET /runs/{id}/live), and the plotted points it does not have yet
// (GET /runs/{id}/series?since=SEQ, SEQ the last record it read); a step's instrument
// I/O is fetched when its <details> is opened. Every fetch is a background one (it does
// not keep the session alive). See docs/web.md, "The run page".
(function () {
  "use strict";
  const page = document.getElementById("run-page");
  if (!page) return;
  const runId = page.dataset.run;
  const base = "/runs/" + encodeURIComponent(runId);
  const plots = document.getElementById("plots");
  const background = { headers: { "X-Cellauto-Background": "1" }, credentials: "same-origin" };
  let series = null;
  let busy = false;
  let again = false;

  async function fetched(url, as) {
    const response = await fetch(url, background);
    if (!response.ok) throw new Error(url + ": " + response.status);
    return as === "json" ? response.json() : response.text();
  }

  function merge(data) {
    if (series === null) { series = data; return; }
    for (const [timeKey, columns] of Object.entries(data.groups)) {
      for (const key of [timeKey, ...columns]) series[key].push(...data[key]);
    }
    for (const key of ["profile_t", "profile_c", "phase_change_s", "specs", "markers", "until_s", "last_seq"]) {
      series[key] = data[key];
    }
  }

  async function loadSeries() {
    const since = series === null || series.last_seq === null ? "" : "?since=" + series.last_seq;
    merge(await fetched(base + "/series" + since, "json"));
    if (plots && window.cellautoPlot) window.cellautoPlot.draw(plots, series);
  }

  async function loadIo(details, url) {
    const body = details.querySelector(".io-body");
    body.innerHTML = await fetched(url, "text");
    details.dataset.loaded = url;
  }

  function applyLive(live) {
    document.getElementById("run-state").innerHTML = live.state_html;
    const timeline = document.getElementById("run-timeline");
    const open = new Map();
    for (const d of timeline.querySelectorAll("details.io[open]")) {
      open.set(d.dataset.step, d.dataset.loaded || "");
    }
    timeline.innerHTML = live.timeline_html;
    for (const d of timeline.querySelectorAll("details.io")) {
      if (!open.has(d.dataset.step)) continue;
      d.open = true; // the toggle handler reloads it (fresh I/O of a running step)
    }
    const form = document.getElementById("run-command-form");
    if (form) {
      for (const [name, state] of Object.entries(live.commands)) {
        const button = form.querySelector('button[name="command"][value="' + name + '"]');
        if (!button) continue;
        button.disabled = !state.enabled;
        button.title = state.why_not;
      }
    }
    page.dataset.state = live.state;
  }

  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        applyLive(await fetched(base + "/live", "json"));
        await loadSeries();
      } while (again);
    } catch (error) {
      console.warn("run page: " + error.message);
    } finally {
      busy = false;
    }
    document.dispatchEvent(new CustomEvent("cellauto:run-page-updated", { detail: { run: runId } }));
  }

  document.addEventListener("cellauto:run", (event) => {
    if (event.detail && event.detail.run === runId) refresh();
  });
  document.addEventListener("cellauto:reconnected", refresh);

  // <details> toggles do not bubble: listen in the capture phase.
  document.addEventListener("toggle", (event) => {
    const details = event.target;
    if (!(details instanceof HTMLDetailsElement) || !details.classList.contains("io") || !details.open) return;
    const url = base + "/io?step=" + encodeURIComponent(details.dataset.step);
    loadIo(details, url).catch((error) => console.warn("instrument I/O: " + error.message));
  }, true);

  // The next page of a step's I/O replaces the one shown.
  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a.io-more") : null;
    if (!link) return;
    const details = link.closest("details.io");
    if (!details) return;
    event.preventDefault();
    loadIo(details, link.getAttribute("href")).catch((error) => console.warn(error.message));
  });

  // Once at load: the page was rendered before live.js's stream was open, and what
  // the run recorded in between comes in no event.
  refresh();
})();
