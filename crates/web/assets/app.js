// EventHive's one script: it only makes live what the server already rendered. Every page
// works without it, except that countdowns and queue places then change on reload only.
"use strict";

// Countdowns: [data-countdown] shows the time left each second; the live region beside it
// speaks only each minute, at 30 and 10 seconds, and at the end, so it does not drown a reader.
function startCountdowns() {
  document.querySelectorAll("[data-countdown]").forEach(function (el) {
    var until = Date.parse(el.getAttribute("data-countdown"));
    var label = el.getAttribute("data-label") || "Time left";
    var announce = el.nextElementSibling;
    if (isNaN(until)) return;
    var first = true;
    function tick() {
      var left = Math.max(0, Math.round((until - Date.now()) / 1000));
      var text = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      el.textContent = left > 0 ? text : "0:00 (time is up)";
      // The ticking element is hidden from screen readers: this region is what they read, so
      // it says the time left from the start.
      if (announce && announce.hasAttribute("data-countdown-announce") &&
          (first || left % 60 === 0 || left === 30 || left === 10)) {
        announce.textContent = left > 0 ? label + " " + text : label + ": time is up.";
      }
      first = false;
      if (left > 0) setTimeout(tick, 1000);
    }
    tick();
  });
}

// The waiting room: fetch the place again when the API said to (data-poll-after), and swap it
// in only when it changed, so the live region speaks news, not repeats.
function followQueue() {
  var region = document.querySelector("[data-poll]");
  if (!region) return;
  // What the server last sent: the region's own HTML changes as its countdowns tick.
  var last = region.innerHTML.trim();
  function schedule() {
    var place = region.querySelector("[data-poll-after]");
    if (!place) return;
    var secs = parseInt(place.getAttribute("data-poll-after"), 10) || 5;
    setTimeout(poll, secs * 1000);
  }
  function poll() {
    fetch(region.getAttribute("data-poll"), { credentials: "same-origin" })
      .then(function (response) {
        // Signed out meanwhile (or sent to the login): the whole page says what to do.
        if (response.status === 401 || response.redirected) { location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined && html.trim() !== last) {
          last = html.trim();
          region.innerHTML = html;
          startCountdowns();
        }
        schedule();
      })
      .catch(schedule);
  }
  schedule();
}

// A page waiting for something the server is finishing (tickets being issued) reloads itself.
function reloadWhenAsked() {
  var el = document.querySelector("[data-reload-after]");
  if (!el) return;
  var secs = parseInt(el.getAttribute("data-reload-after"), 10) || 2;
  setTimeout(function () { location.reload(); }, secs * 1000);
}

// The live dashboard: each update on the API's stream (passed through by the server) fetches
// the figures the server renders, one fetch at a time, so a burst of sales is one redraw.
function followFigures() {
  var region = document.querySelector("[data-live]");
  if (!region || !window.EventSource) return;
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(region.getAttribute("data-figures"), { credentials: "same-origin" })
      .then(function (response) {
        if (response.redirected) { location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html) region.innerHTML = html; })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }
  // EventSource reconnects by itself when the stream drops.
  new EventSource(region.getAttribute("data-live")).addEventListener("analytics", refresh);
}

document.addEventListener("DOMContentLoaded", function () {
  startCountdowns();
  followFigures();
  followQueue();
  reloadWhenAsked();
});
