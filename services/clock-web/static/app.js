// Shows the server's time: polls the relative URL "clock" (same origin, proxied to clock-api)
// and renders its epoch seconds in the browser's local time zone. While the backend fails,
// <html data-state="unreachable"> and #clock-status say so; the next good answer clears it.
"use strict";

(function () {
  var POLL_MS = 500;
  // Shorter than the proxy's own 5 s upstream timeout, so a hung API shows up within 2 s.
  var TIMEOUT_MS = 2000;
  var EPOCH = /^\s*\d+(\.\d+)?([eE][+-]?\d+)?\s*$/;

  var root = document.documentElement;
  var timeEl = document.getElementById("clock-time");
  var dateEl = document.getElementById("clock-date");
  var statusEl = document.getElementById("clock-status");

  function pad(n, width) {
    return String(n).padStart(width, "0");
  }

  function render(date) {
    var hms = pad(date.getHours(), 2) + ":" + pad(date.getMinutes(), 2) + ":" + pad(date.getSeconds(), 2);
    var dmy = pad(date.getDate(), 2) + "/" + pad(date.getMonth() + 1, 2) + "/" + pad(date.getFullYear(), 4);
    if (timeEl.textContent !== hms) {
      timeEl.textContent = hms;
    }
    if (dateEl.textContent !== dmy) {
      dateEl.textContent = dmy;
    }
    timeEl.setAttribute("datetime", date.toISOString());
    dateEl.setAttribute("datetime", date.toISOString().slice(0, 10));
  }

  function setState(state) {
    if (root.getAttribute("data-state") !== state) {
      root.setAttribute("data-state", state);
    }
    var failing = state === "unreachable";
    statusEl.textContent = failing ? "backend unreachable" : "";
    statusEl.hidden = !failing;
  }

  // fetchEpoch resolves to the server's epoch in milliseconds, or rejects on a network error,
  // a non-2xx status, an unparsable body or a request slower than TIMEOUT_MS.
  function fetchEpoch() {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, TIMEOUT_MS);
    return fetch("clock", {
      cache: "no-store",
      credentials: "omit",
      headers: { "Accept": "text/plain" },
      signal: controller.signal
    }).then(function (res) {
      if (!res.ok) {
        throw new Error("status " + res.status);
      }
      return res.text();
    }).then(function (body) {
      if (!EPOCH.test(body)) {
        throw new Error("unparsable body");
      }
      var ms = parseFloat(body) * 1000;
      if (!isFinite(ms)) {
        throw new Error("unparsable body");
      }
      return ms;
    }).finally(function () {
      clearTimeout(timer);
    });
  }

  // poll runs one request at a time: the next starts POLL_MS after this one started, or at
  // once if this one took longer, so polls never overlap.
  function poll() {
    var started = Date.now();
    fetchEpoch().then(function (ms) {
      var date = new Date(ms);
      if (isNaN(date.getTime())) {
        throw new Error("unparsable body");
      }
      render(date);
      setState("ok");
    }).catch(function () {
      setState("unreachable");
    }).then(function () {
      var wait = Math.max(0, POLL_MS - (Date.now() - started));
      setTimeout(poll, wait);
    });
  }

  poll();
})();
