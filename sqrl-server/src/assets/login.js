// The login page: follows the attempt live (Server-Sent Events, /pag.sqrl
// polling as the fallback), rotates the code while it is open, and runs the
// same-device CPS probe of the local SQRL client (SPEC 7).
(function () {
  "use strict";
  var script = document.getElementById("sqrl");
  if (!script) { return; }
  var nut = script.getAttribute("data-nut");
  var link = script.getAttribute("data-link");
  // The path the service is mounted under ("" or "/auth"): every request
  // this page makes stays below it.
  var prefix = script.getAttribute("data-prefix") || "";
  var rotateMs = Math.max(5, Number(script.getAttribute("data-rotate")) || 50) * 1000;
  var status = document.getElementById("status");
  var done = false;
  var source = null;
  var pollTimer = null;
  var rotateTimer = null;

  var messages = {
    "pending": "Waiting for your SQRL app\u2026",
    "scanned": "Code received. Confirm the login on your device.",
    "confirmed": "Confirmed. Signing you in\u2026",
    "logged-in": "Signed in.",
    "client-session": "Your SQRL app is signing this browser in\u2026",
    "rejected": "This login was refused (SQRL disabled or removed for this identity).",
    "expired": "This code has expired."
  };
  // The page stops listening once the login is confirmed (it goes on to
  // sign in) or can change no more (the server's list, served before this
  // script).
  function ends(state) {
    return state === "confirmed" || SQRL_TERMINAL_STATES.indexOf(state) >= 0;
  }

  function stop() {
    done = true;
    if (source) { source.close(); source = null; }
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    if (rotateTimer) { clearInterval(rotateTimer); rotateTimer = null; }
  }

  // An expired code cannot be scanned any more: take it away, with the
  // same-device link and the URL, and offer a fresh one in its place.
  function showExpired() {
    ["qr", "url", "link", "local-app"].forEach(function (id) {
      var element = document.getElementById(id);
      if (element) { element.hidden = true; }
    });
    document.getElementById("expired").hidden = false;
    document.getElementById("fresh-code").addEventListener("click", function () {
      window.location.reload();
    });
  }

  function handle(message) {
    if (done || !message || !message.state) { return; }
    status.textContent = messages[message.state] || message.state;
    if (message.state === "expired") { showExpired(); }
    if (message.state !== "pending") {
      // Once a client has the code, showing a new one would only confuse.
      if (rotateTimer) { clearInterval(rotateTimer); rotateTimer = null; }
    }
    if (ends(message.state)) {
      stop();
      if (message.state === "confirmed" && message.url) {
        if (message.check) {
          askBeforeSigningIn(message.url, message.check);
        } else {
          window.location.assign(message.url);
        }
      }
    }
  }

  // The device that confirmed was not on this browser's network: the code
  // may have been relayed to someone else, or answered first by whoever
  // photographed the screen. Show whose identity this browser is about to be
  // signed in as, and sign in only on a click.
  function askBeforeSigningIn(url, fingerprint) {
    status.textContent = "Confirmed from a device on another network.";
    var panel = document.getElementById("check");
    document.getElementById("check-fingerprint").textContent = fingerprint;
    panel.hidden = false;
    document.getElementById("check-continue").addEventListener("click", function () {
      window.location.assign(url);
    });
    document.getElementById("check-cancel").addEventListener("click", function () {
      panel.hidden = true;
      status.textContent = "Sign-in cancelled. Reload the page to start again.";
    });
  }

  function poll() {
    if (done || document.hidden) { return; }
    fetch(prefix + "/pag.sqrl?nut=" + encodeURIComponent(nut), {
      headers: { "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      if (response.status === 404) { return { state: "expired" }; }
      return response.json();
    }).then(function (message) {
      if (message.url) { message.state = "confirmed"; }
      handle(message);
    }).catch(function () { /* try again on the next tick */ });
  }

  function startPolling() {
    if (pollTimer || done) { return; }
    if (source) { source.close(); source = null; }
    pollTimer = setInterval(poll, 500);
  }

  if (window.EventSource) {
    source = new EventSource(prefix + "/login/events?nut=" + encodeURIComponent(nut));
    // The server sends the current state as soon as the stream opens. Silence
    // means something between (a buffering proxy, a scanner) holds the stream
    // without failing it, so poll instead of waiting forever.
    var heard = false;
    setTimeout(function () { if (!heard && !done) { startPolling(); } }, 3000);
    source.onmessage = function (event) {
      heard = true;
      try { handle(JSON.parse(event.data)); } catch (e) { /* ignore a bad frame */ }
    };
    source.onerror = function () {
      if (!done) { startPolling(); }
    };
  } else {
    startPolling();
  }

  function rotate() {
    if (done) { return; }
    fetch(prefix + "/login/rotate?nut=" + encodeURIComponent(nut), {
      method: "POST",
      credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) {
        if (rotateTimer) { clearInterval(rotateTimer); rotateTimer = null; }
        return null;
      }
      return response.json();
    }).then(function (fresh) {
      if (!fresh || done) { return; }
      document.getElementById("qr").innerHTML = fresh.svg;
      document.getElementById("url").textContent = fresh.url;
      document.getElementById("link").setAttribute("href", fresh.link);
      link = fresh.link;
    }).catch(function () { /* keep the current code */ });
  }
  rotateTimer = setInterval(rotate, rotateMs);

  // base64url without padding. Global replacements: replacing only the first
  // '+' and '/' (a bug in a widely copied script, PITFALLS 33) breaks URLs.
  function base64url(text) {
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // Same-device login (SPEC 7): the link launches the SQRL app; meanwhile
  // probe the app's localhost server with an image load, and only once it
  // answers navigate there, so visitors without an app see no error page.
  var probing = false;
  function probe(tries) {
    if (done || tries <= 0) { probing = false; return; }
    var image = new Image();
    image.onload = function () {
      probing = false;
      stop();
      window.location.href = "http://localhost:25519/" + base64url(link);
    };
    image.onerror = function () {
      setTimeout(function () { probe(tries - 1); }, 250);
    };
    image.src = "http://localhost:25519/" + Date.now() + ".gif";
  }
  document.getElementById("link").addEventListener("click", function () {
    if (!probing) { probing = true; probe(240); }
  });

  // A SQRL app running on this computer makes the same-device link the
  // obvious choice: it cannot be relayed to, or answered from, elsewhere.
  var local = new Image();
  local.onload = function () {
    document.getElementById("link").classList.add("primary");
    document.getElementById("local-app").hidden = false;
  };
  local.src = "http://localhost:25519/" + Date.now() + ".gif";
})();
