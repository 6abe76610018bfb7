// Live lists (the task inbox, the alarms): each element with data-fragment="URL" and
// data-on="tasks counts reconnected" is fetched again from URL when live.js dispatches
// one of those events ("cellauto:" + name). A list the person is typing into (focus or
// a value in one of its fields) is left alone until they leave it, so no half-filled
// signature is ever wiped. See docs/web.md, "Operator tasks and alarms".
"use strict";
(function () {
  const lists = Array.from(document.querySelectorAll("[data-fragment]"));
  if (lists.length === 0) return;

  function busy(list) {
    if (list.contains(document.activeElement) && document.activeElement !== document.body) {
      return true;
    }
    return Array.from(list.querySelectorAll("input:not([type=hidden]), textarea, select"))
      .some((field) => field.value !== "");
  }

  async function refresh(list) {
    if (busy(list)) {
      list.dataset.stale = "1";
      return;
    }
    delete list.dataset.stale;
    let response;
    try {
      response = await fetch(list.dataset.fragment, {
        headers: { "X-Cellauto-Background": "1" },
        credentials: "same-origin",
      });
    } catch (error) {
      list.dataset.stale = "1";
      return;
    }
    if (response.redirected || !response.ok) return; // signed out: live.js goes to /login
    const html = await response.text();
    if (busy(list)) {
      list.dataset.stale = "1";
      return;
    }
    const parsed = new DOMParser().parseFromString(html, "text/html");
    const fresh = parsed.getElementById(list.id);
    if (fresh) list.replaceChildren(...fresh.childNodes);
    document.dispatchEvent(new CustomEvent("cellauto:refreshed", { detail: { id: list.id } }));
  }

  for (const list of lists) {
    for (const name of (list.dataset.on || "").split(/\s+/).filter(Boolean)) {
      document.addEventListener("cellauto:" + name, () => refresh(list));
    }
    list.addEventListener("focusout", () => {
      // after the focus moved on (to nothing inside the list), catch up
      setTimeout(() => {
        if (list.dataset.stale && !busy(list)) refresh(list);
      }, 0);
    });
  }
})();
