// The page's live updates (server-sent events): see docs/web.md, "The line overview".
// One EventSource per page, on the topics of <body data-topics>. It keeps the badges and
// the overview's rows current, goes to the sign-in page when the session ends, and hands
// every event to the page's own scripts as a DOM event "cellauto:<name>" (detail: the
// event's data); each time the stream opens (the first time too: the page may have missed
// what was recorded since it was rendered), "cellauto:reconnected".
(() => {
  "use strict";
  const body = document.body;
  const topics = (body.dataset.topics || "").trim().split(/\s+/).filter(Boolean);
  if (!topics.length || !window.EventSource) {
    return;
  }
  const url = "/events?topics=" + encodeURIComponent(topics.join(","));
  const names = ["row", "counts", "run", "tasks", "alarms", "logout"];
  const background = { "X-Cellauto-Background": "1" };
  let source = null;
  let lost = false;
  let leaving = false;
  // A re-read of the rows in flight, and the row events that came meanwhile: its listing
  // may have been read before their changes, so it is read again (up to three times),
  // then those events are applied over it: a row that appeared meanwhile is never lost.
  let rereading = false;
  let during = [];

  function dispatch(name, detail) {
    document.dispatchEvent(new CustomEvent("cellauto:" + name, { detail: detail }));
  }

  function badge(id, count) {
    const el = document.getElementById(id);
    if (el && typeof count === "number") {
      el.textContent = String(count);
      el.dataset.count = String(count);
    }
  }

  function replaceRow(data) {
    if (rereading) {
      during.push(data);
    }
    const old = document.getElementById("run-" + data.run);
    if (old) {
      old.outerHTML = data.html;
      return;
    }
    const rows = document.getElementById("runs-body");
    if (rows) {
      rows.insertAdjacentHTML("afterbegin", data.html);
    }
  }

  async function refetchRows() {
    const rows = document.getElementById("runs-body");
    if (!rows || rereading) {
      return;
    }
    rereading = true;
    try {
      for (let attempt = 1; ; attempt += 1) {
        during = [];
        const response = await fetch("/line/rows" + location.search, { headers: background });
        if (!response.ok) {
          return;
        }
        const html = await response.text();
        if (during.length === 0 || attempt === 3) {
          const missed = during;
          rows.innerHTML = html;
          rereading = false;
          missed.forEach(replaceRow);
          return;
        }
      }
    } finally {
      rereading = false;
      during = [];
    }
  }

  function toLogin() {
    leaving = true;
    if (source) {
      source.close();
    }
    location.assign("/login?idle=1");
  }

  const handlers = {
    counts: (data) => {
      badge("badge-tasks", data.tasks);
      badge("badge-alarms", data.alarms);
    },
    row: replaceRow,
    logout: toLogin,
  };

  // After the stream failed for good (EventSource gave up): signed out, or the server
  // is back? A signed-out request is sent to /login (a redirect), else listen again.
  async function check() {
    const stop = new AbortController();
    try {
      const response = await fetch(url, {
        redirect: "manual",
        signal: stop.signal,
        headers: background,
      });
      stop.abort();
      if (response.type === "opaqueredirect" || response.status === 401) {
        toLogin();
        return;
      }
    } catch (_) {
      // the server is still away: try again below
    }
    open();
  }

  function open() {
    source = new EventSource(url);
    for (const name of names) {
      source.addEventListener(name, (message) => {
        let data;
        try {
          data = JSON.parse(message.data);
        } catch (_) {
          return;
        }
        if (handlers[name]) {
          handlers[name](data);
        }
        dispatch(name, data);
      });
    }
    source.addEventListener("open", () => {
      // the first opening too: what was recorded between the page's rendering and the
      // stream's opening came in no event, so the page re-reads what it shows
      lost = false;
      refetchRows().catch(() => undefined);
      dispatch("reconnected", {});
    });
    source.addEventListener("error", () => {
      if (leaving) {
        return;
      }
      lost = true;
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(check, 3000);
      }
    });
  }

  window.addEventListener("pagehide", () => {
    leaving = true;
    if (source) {
      source.close();
    }
  });
  open();
})();
