// Notifications of new operator tasks: see docs/web.md, "Operator tasks and alarms".
// On a "cellauto:counts" event (live.js) naming tasks this browser has not seen yet (a
// Set in this tab, and localStorage across tabs): the title shows "(N) ...", the Tasks
// badge pulses, and, once the person clicked "Enable alerts" (a user gesture, as
// browsers require), a Notification and a short generated tone.
"use strict";
(function () {
  const SEEN_KEY = "cellauto.seenTasks";
  const ALERTS_KEY = "cellauto.alerts";
  const KEEP = 500;
  const seen = new Set();
  const baseTitle = document.title.replace(/^\(\d+\) /, "");
  let audio = null;

  function stored() {
    try {
      const list = JSON.parse(localStorage.getItem(SEEN_KEY) || "[]");
      return Array.isArray(list) ? list : [];
    } catch (error) {
      return [];
    }
  }

  function remember(ids) {
    const list = stored().filter((id) => !ids.includes(id)).concat(ids);
    try {
      localStorage.setItem(SEEN_KEY, JSON.stringify(list.slice(-KEEP)));
    } catch (error) {
      /* storage full or denied: this tab's Set still holds them */
    }
  }

  function alertsOn() {
    return localStorage.getItem(ALERTS_KEY) === "1";
  }

  function tone() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (audio === null) audio = new Context();
    if (audio.state === "suspended") audio.resume().catch(() => {});
    const now = audio.currentTime;
    const gain = audio.createGain();
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(0.2, now + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.45);
    gain.connect(audio.destination);
    for (const [frequency, start] of [[880, 0], [1175, 0.18]]) {
      const oscillator = audio.createOscillator();
      oscillator.type = "sine";
      oscillator.frequency.setValueAtTime(frequency, now + start);
      oscillator.connect(gain);
      oscillator.start(now + start);
      oscillator.stop(now + start + 0.25);
    }
  }

  function pulse() {
    const badge = document.getElementById("badge-tasks");
    if (!badge) return;
    badge.classList.remove("pulse");
    void badge.offsetWidth; // restart the animation
    badge.classList.add("pulse");
  }

  function title(count) {
    document.title = count > 0 ? `(${count}) ${baseTitle}` : baseTitle;
  }

  document.addEventListener("cellauto:counts", (event) => {
    const detail = event.detail || {};
    const waiting = Number(detail.tasks || 0);
    if (document.title !== baseTitle) title(waiting); // keep the count current
    const before = new Set(stored());
    const fresh = (detail.new_tasks || []).filter((id) => !seen.has(id) && !before.has(id));
    if (fresh.length === 0) return;
    fresh.forEach((id) => seen.add(id));
    remember(fresh);
    title(Math.max(waiting, fresh.length));
    pulse();
    document.dispatchEvent(new CustomEvent("cellauto:new-tasks", { detail: { ids: fresh } }));
    if (!alertsOn()) return;
    if ("Notification" in window && Notification.permission === "granted") {
      const body = fresh.length === 1 ? `task ${fresh[0]}` : `${fresh.length} tasks: ${fresh.join(", ")}`;
      new Notification("Task waiting for a person", { body, tag: "cellauto-tasks" });
    }
    tone();
  });

  // A page with an "Enable alerts" button (the inbox) offers the alerts; the click is
  // the user gesture the browser needs for notifications and sound.
  const button = document.getElementById("enable-alerts");
  if (button) {
    const label = () => {
      button.textContent = alertsOn() ? "Alerts on" : "Enable alerts";
      button.setAttribute("aria-pressed", alertsOn() ? "true" : "false");
    };
    button.hidden = false;
    label();
    button.addEventListener("click", async () => {
      if (alertsOn()) {
        localStorage.removeItem(ALERTS_KEY);
        label();
        return;
      }
      localStorage.setItem(ALERTS_KEY, "1");
      label();
      tone(); // started by the gesture: later tones on this page may play
      if ("Notification" in window && Notification.permission === "default") {
        try {
          await Notification.requestPermission();
        } catch (error) {
          /* refused or unsupported: the tone and the badge remain */
        }
      }
    });
  }
  // Browsers start sound only after a gesture on the page: the first click or key on
  // any page lets the tone play afterwards.
  const unlock = () => {
    if (alertsOn() && audio === null) {
      const Context = window.AudioContext || window.webkitAudioContext;
      if (Context) audio = new Context();
    }
  };
  document.addEventListener("pointerdown", unlock, { once: true });
  document.addEventListener("keydown", unlock, { once: true });
})();
