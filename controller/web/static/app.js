// tpf web views: countdowns, instant filtering, polling of the pages' live
// parts, and a confirmation before revoking. The pages work without it;
// this only keeps them current.
(function () {
  "use strict";

  // The server's clock is the one that counts: correct for the browser's.
  var meta = document.querySelector('meta[name="tpf-now"]');
  var skew = 0;
  if (meta && meta.content) {
    var server = Date.parse(meta.content);
    if (!isNaN(server)) skew = server - Date.now();
  }
  function now() { return Date.now() + skew; }

  function pad(n) { return n < 10 ? "0" + n : "" + n; }

  // The same words as the server's countdown: 1h 59m 58s, 4m 03s, 12s.
  function countdown(ms) {
    if (ms <= 0) return "expired";
    var s = Math.floor(ms / 1000);
    var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    if (h > 0) return h + "h " + pad(m) + "m " + pad(sec) + "s";
    if (m > 0) return m + "m " + pad(sec) + "s";
    return sec + "s";
  }

  function tickCountdowns() {
    var els = document.querySelectorAll("[data-expires]");
    for (var i = 0; i < els.length; i++) {
      var left = Date.parse(els[i].getAttribute("data-expires")) - now();
      var text = countdown(left);
      if (els[i].textContent !== text) els[i].textContent = text;
      els[i].classList.toggle("soon", left > 0 && left < 5 * 60 * 1000);
      els[i].classList.toggle("expired", left <= 0);
    }
  }

  // Instant filtering of a table's rows by their data-search text; the
  // server applies the same filter (?q=) when the form is submitted and
  // when the page polls.
  function applyFilter(input) {
    var body = document.getElementById(input.getAttribute("data-instant-filter"));
    if (!body) return;
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var rows = body.querySelectorAll("tr[data-search]");
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var text = rows[i].getAttribute("data-search");
      var match = words.every(function (w) { return text.indexOf(w) >= 0; });
      rows[i].hidden = !match;
      if (match) shown++;
    }
    var none = body.querySelector("[data-nomatch]");
    if (none) none.hidden = shown > 0;
    var count = document.querySelector("[data-shown]");
    if (count) count.textContent = shown;
  }

  // Filtering hides rows at once; a moment later the live part is fetched
  // again with the new ?q=, which brings back rows a narrower search had
  // left out and updates the counts.
  function setupFilter(input) {
    var timer = null;
    input.addEventListener("input", function () {
      applyFilter(input);
      var url = new URL(location.href);
      if (input.value.trim()) url.searchParams.set("q", input.value.trim());
      else url.searchParams.delete("q");
      history.replaceState(null, "", url);
      clearTimeout(timer);
      timer = setTimeout(function () { document.dispatchEvent(new Event("tpf:refresh")); }, 300);
    });
  }

  function refilter() {
    var inputs = document.querySelectorAll("[data-instant-filter]");
    for (var i = 0; i < inputs.length; i++) applyFilter(inputs[i]);
  }

  var liveState = document.querySelector("[data-live-state]");
  function showState(ok) {
    if (!liveState) return;
    liveState.hidden = false;
    liveState.textContent = ok ? "live" : "reconnecting…";
    liveState.classList.toggle("lost", !ok);
  }

  // Polling: fetch the live part of this very page (?fragment=live) and
  // swap it in when it changed. Unchanged fragments answer 304 (ETag).
  function poll(el) {
    var interval = parseInt(el.getAttribute("data-interval"), 10) || 5000;
    var last = null;
    var failures = 0;
    var timer = null;
    var inflight = false;
    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(run, failures ? Math.min(interval * (failures + 1), 30000) : interval);
    }
    document.addEventListener("tpf:refresh", function () { if (!inflight) run(); });
    document.addEventListener("visibilitychange", function () { if (!document.hidden && !inflight) run(); });
    function run() {
      clearTimeout(timer);
      if (document.hidden) { schedule(); return; }
      inflight = true;
      var url = new URL(location.href);
      url.hash = "";
      url.searchParams.set("fragment", "live");
      fetch(url, { credentials: "same-origin", cache: "no-cache", headers: { "Accept": "text/html" } })
        .then(function (res) {
          if (res.status === 401) {
            location.assign("/signin?next=" + encodeURIComponent(location.pathname + location.search));
            return null;
          }
          if (!res.ok) throw new Error("HTTP " + res.status);
          return res.text();
        })
        .then(function (html) {
          inflight = false;
          if (html === null) return;
          failures = 0;
          showState(true);
          if (html !== last && !busy(el)) {
            swap(el, html);
            last = html;
          }
          schedule();
        })
        .catch(function () {
          inflight = false;
          failures++;
          showState(false);
          schedule();
        });
    }
    schedule();
  }

  // busy: the user is selecting text in el; swapping would lose it.
  function busy(el) {
    var sel = window.getSelection && window.getSelection();
    return !!(sel && !sel.isCollapsed && sel.anchorNode && el.contains(sel.anchorNode));
  }

  function swap(el, html) {
    var open = [];
    var details = el.querySelectorAll("details[open][id]");
    for (var i = 0; i < details.length; i++) open.push(details[i].id);
    el.innerHTML = html;
    for (var j = 0; j < open.length; j++) {
      var d = document.getElementById(open[j]);
      if (d) d.open = true;
    }
    tickCountdowns();
    refilter();
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
      return;
    }
    var buttons = form.querySelectorAll("button[type=submit]");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
  });

  document.addEventListener("DOMContentLoaded", function () {
    tickCountdowns();
    setInterval(tickCountdowns, 1000);
    var inputs = document.querySelectorAll("[data-instant-filter]");
    for (var i = 0; i < inputs.length; i++) setupFilter(inputs[i]);
    var live = document.querySelectorAll("[data-live]");
    for (var j = 0; j < live.length; j++) poll(live[j]);
    if (live.length) showState(true);
  });
})();
