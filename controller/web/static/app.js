// tpf web views: countdowns, instant filtering, polling of the pages' live
// parts, a confirmation before revoking, copy buttons, the add-router form's
// tunnel field, and keeping pages that show a secret from being posted
// again. The pages work without it; this only keeps them current and handy.
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
    // Disabled buttons are left out of the form's data, the pressed one
    // too: a named one (the access form's Open WinBox and Open SSH say the
    // type) is carried by a hidden field instead.
    var old = form.querySelector("input[data-submitter]");
    if (old) old.remove();
    var pressed = ev.submitter;
    if (pressed && pressed.name) {
      var carry = document.createElement("input");
      carry.type = "hidden";
      carry.name = pressed.name;
      carry.value = pressed.value;
      carry.setAttribute("data-submitter", "");
      form.appendChild(carry);
    }
    var buttons = form.querySelectorAll("button[type=submit]");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
  });

  // Copy buttons: data-copy names the element whose text they copy. The
  // clipboard API needs a secure context (https, or localhost); elsewhere
  // the text is selected and copied the old way.
  function copyText(button) {
    var el = document.getElementById(button.getAttribute("data-copy"));
    if (!el) return;
    var text = el.textContent;
    function done(ok) {
      var label = button.getAttribute("data-label") || button.textContent;
      button.setAttribute("data-label", label);
      button.textContent = ok ? "Copied ✓" : "Select and copy by hand";
      button.classList.toggle("copied", ok);
      if (ok) el.setAttribute("data-copied", "");
      clearTimeout(button._tpfTimer);
      button._tpfTimer = setTimeout(function () {
        button.textContent = label;
        button.classList.remove("copied");
      }, 2500);
    }
    function fallback() {
      var range = document.createRange();
      range.selectNodeContents(el);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
  }

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest && ev.target.closest("button[data-copy]");
    if (button) copyText(button);
  });

  // The add-router form asks for a tunnel address only in regions whose
  // tunnel is the operator's own (manual); without this script the field
  // is always there, with a hint saying so.
  function setupRegionSelect(select) {
    var field = document.querySelector("[data-manual-only]");
    function update() {
      var opt = select.options[select.selectedIndex];
      var manual = !!(opt && opt.hasAttribute("data-manual"));
      if (field) field.hidden = !manual;
      var notes = document.querySelectorAll("[data-region-note]");
      for (var i = 0; i < notes.length; i++) notes[i].hidden = notes[i].getAttribute("data-region-note") !== select.value;
    }
    select.addEventListener("change", update);
    update();
  }

  // A page that answers a POST with a secret puts a plain URL in the
  // address bar: reloading or coming back then loads that page instead of
  // posting the form again (and so issuing another secret).
  var replace = document.querySelector('meta[name="tpf-replace-url"]');
  if (replace && replace.content && window.history && history.replaceState) {
    history.replaceState(null, "", replace.content);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var selects = document.querySelectorAll("[data-region-select]");
    for (var k = 0; k < selects.length; k++) setupRegionSelect(selects[k]);
    tickCountdowns();
    setInterval(tickCountdowns, 1000);
    var inputs = document.querySelectorAll("[data-instant-filter]");
    for (var i = 0; i < inputs.length; i++) setupFilter(inputs[i]);
    var live = document.querySelectorAll("[data-live]");
    for (var j = 0; j < live.length; j++) poll(live[j]);
    if (live.length) showState(true);
  });
})();
