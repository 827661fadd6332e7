// webhook-monitor dashboard: live refresh. The pages work without it; with it, the page's
// <main> is fetched again every `data-refresh` seconds while the "live" toggle is on.
(function () {
  "use strict";

  var period = Number(document.body.getAttribute("data-refresh")) * 1000;
  var toggle = document.getElementById("live");
  var label = document.getElementById("live-toggle");
  var status = document.getElementById("live-status");
  if (!toggle || !label || !(period > 0) || !window.fetch || !window.DOMParser) {
    return;
  }

  var KEY = "webhook-monitor.live";
  var busy = false;

  function stored() {
    try {
      return window.localStorage.getItem(KEY) !== "off";
    } catch (e) {
      return true;
    }
  }

  function store(on) {
    try {
      window.localStorage.setItem(KEY, on ? "on" : "off");
    } catch (e) {
      // Storage may be disabled: the toggle still works for this page.
    }
  }

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  // Someone typing in a form (the filters) should not lose what they typed.
  function editing() {
    var el = document.activeElement;
    return !!el && !!el.closest && !!el.closest("main form");
  }

  function refresh() {
    if (busy || !toggle.checked || document.hidden || editing()) {
      return;
    }
    busy = true;
    window
      .fetch(window.location.href, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      })
      .then(function (res) {
        if (!res.ok) {
          throw new Error(String(res.status));
        }
        return res.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main");
        var current = document.querySelector("main");
        if (fresh && current) {
          current.replaceWith(document.importNode(fresh, true));
        }
        say("");
      })
      .catch(function () {
        say("(not updated)");
      })
      .then(function () {
        busy = false;
      });
  }

  toggle.checked = stored();
  label.hidden = false;
  toggle.addEventListener("change", function () {
    store(toggle.checked);
    say("");
    if (toggle.checked) {
      refresh();
    }
  });
  window.setInterval(refresh, period);
})();
