// The door's script (the page is pages/door.rs). Without it the page is a form the server
// answers; with it: answers without reloading, scanning with the camera where the browser can
// read QR codes (BarcodeDetector), and an offline mode. Offline, a code is verified here with
// the event's Ed25519 check-in key (WebCrypto), the check-in is kept in localStorage (a second
// scan of it is refused here), and it is posted to the same form when the network is back.
"use strict";

(function () {
  var form = document.querySelector("form.door[data-event]");
  if (!form) return;
  var eventId = form.getAttribute("data-event");
  var field = form.elements.code;
  var answerRegion = document.getElementById("answer");
  var networkLine = document.querySelector("[data-network]");
  var pendingLine = document.querySelector("[data-pending]");
  var refusedBox = document.querySelector("[data-refused]");
  var store = doorStore(eventId);
  // The event's key, once imported; null while it is not (or cannot be).
  var key = null;
  // Whether the last try to reach EventHive failed (or the browser says it is offline).
  var offline = !navigator.onLine;
  var cameraOn = false;
  var scans = 0;
  // How long a check may wait for the server before the code is checked here instead.
  var PATIENCE_MS = 4000;
  // The form's answers, by status: the same words as the page without the script.
  var ANSWERS = { 200: "valid", 409: "already", 404: "invalid", 403: "not-staff", 422: "empty" };
  var OFFLINE_NOTE = "Checked on this device, offline.";

  // ---- Answers.

  function show(kind, note) {
    var template = document.querySelector('template[data-answer="' + kind + '"]');
    answerRegion.textContent = "";
    if (template) answerRegion.appendChild(template.content.cloneNode(true));
    if (note) {
      var line = document.createElement("p");
      line.className = "offline-note";
      line.textContent = note;
      (answerRegion.querySelector(".answer") || answerRegion).appendChild(line);
    }
    // Counted, so that a second identical answer is still news (and tests can wait for it).
    scans += 1;
    answerRegion.setAttribute("data-scans", String(scans));
    field.value = "";
    // Ready for the next code; with the camera on, a phone's keyboard would only be in the way.
    if (!cameraOn) field.focus();
  }

  // One check at a time, in the order scanned: a quick second scan cannot overtake the first.
  var checks = Promise.resolve();
  function check(code) {
    checks = checks.then(function () { return checkOne(code); }).catch(function (error) {
      // The next scan is checked all the same.
      if (window.console) console.error("checking a code failed", error);
    });
  }

  function checkOne(code) {
    if (!navigator.onLine) return checkHere(code);
    return post(code).then(function (status) {
      var kind = ANSWERS[status];
      if (!kind) return checkHere(code); // busy or failing: the door must not wait
      offline = false;
      if (kind === "valid" || kind === "already") remember(code, "in");
      show(kind);
      render();
    }, function () {
      offline = true;
      render();
      return checkHere(code);
    });
  }

  // Posts a code to the page's own form; the answer's status says what it was.
  function post(code) {
    var body = new URLSearchParams();
    body.set("csrf", form.elements.csrf.value);
    body.set("code", code);
    var options = { method: "POST", body: body, credentials: "same-origin" };
    if (window.AbortSignal && AbortSignal.timeout) options.signal = AbortSignal.timeout(PATIENCE_MS);
    return fetch(form.action, options).then(function (response) {
      // Sent to the login page: the session ended. Nothing was checked in.
      if (response.redirected) {
        signedOut = true;
        throw new Error("signed out");
      }
      signedOut = false;
      return response.status;
    });
  }
  var signedOut = false;

  function checkHere(code) {
    if (!key) {
      show("unchecked", "No network, and this page cannot check codes by itself: " + whyNoKey);
      return Promise.resolve();
    }
    return verify(code).then(function (ticket) {
      var known = store.data.tickets[ticket];
      // Refused when synced before: refunded or void, whatever its signature says.
      if (!ticket || (known && known.state === "refused")) return show("invalid", OFFLINE_NOTE);
      if (known) return show("already", OFFLINE_NOTE);
      remember(code, "pending");
      show("valid", OFFLINE_NOTE + " It syncs when the network is back.");
      render();
    });
  }

  function remember(code, state) {
    var read = readCode(code);
    if (!read) return;
    var known = store.data.tickets[read.ticket];
    if (known && known.state === "pending" && state === "in") return; // the sync says when
    store.data.tickets[read.ticket] = { code: code, state: state };
    store.save();
  }

  // ---- Codes: base64url(payload || signature), no padding; payload = 0x01 || event id (16
  // bytes) || ticket id (16 bytes); signature = Ed25519 over the payload (ticketing/tickets.rs).

  function decode(text) {
    if (!/^[A-Za-z0-9_-]+$/.test(text)) return null;
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary;
    try { binary = atob(base64); } catch (e) { return null; }
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    // Only the one spelling of these bytes counts, as on the server.
    return encode(bytes) === text ? bytes : null;
  }

  function encode(bytes) {
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function uuid(bytes) {
    var hex = Array.prototype.map.call(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function readCode(text) {
    var bytes = decode(text.trim());
    if (!bytes || bytes.length !== 97 || bytes[0] !== 1) return null;
    return {
      payload: bytes.slice(0, 33),
      signature: bytes.slice(33),
      event: uuid(bytes.slice(1, 17)),
      ticket: uuid(bytes.slice(17, 33)),
    };
  }

  // The ticket id of a genuine code of this event, else null.
  function verify(text) {
    var code = readCode(text);
    if (!code || code.event !== eventId) return Promise.resolve(null);
    return crypto.subtle.verify({ name: "Ed25519" }, key, code.signature, code.payload).then(
      function (genuine) { return genuine ? code.ticket : null; },
      function () { return null; });
  }

  var whyNoKey = "it has no check-in key.";
  function importKey() {
    var raw = form.getAttribute("data-key");
    if (!raw) return;
    if (!window.crypto || !crypto.subtle) {
      whyNoKey = "checking signatures needs the page served over https.";
      return render();
    }
    crypto.subtle.importKey("raw", decode(raw), { name: "Ed25519" }, false, ["verify"]).then(function (imported) {
      key = imported;
      form.setAttribute("data-offline", "ready");
      render();
    }, function () {
      whyNoKey = "this browser cannot check Ed25519 signatures.";
      render();
    });
  }

  // ---- What is kept on this device, per event: the tickets checked in (so a second scan is
  // refused offline too), which of them wait to sync, and what the server refused.

  function doorStore(id) {
    var name = "eventhive-door:" + id;
    var data;
    try { data = JSON.parse(localStorage.getItem(name)) || {}; } catch (e) { data = {}; }
    data.tickets = data.tickets || {};
    data.refused = data.refused || [];
    return {
      data: data,
      save: function () {
        try { localStorage.setItem(name, JSON.stringify(data)); } catch (e) { /* full or disabled: kept in the page */ }
      },
    };
  }

  function pending() {
    return Object.keys(store.data.tickets).filter(function (id) { return store.data.tickets[id].state === "pending"; });
  }

  // ---- Sync: each check-in made offline is posted, oldest first, whenever the network is there.

  var syncing = false;
  function sync() {
    var next = pending()[0];
    if (syncing || !next || !navigator.onLine) return;
    var entry = store.data.tickets[next];
    syncing = true;
    post(entry.code).then(function (status) {
      syncing = false;
      if (status === 200) {
        entry.state = "in";
      } else if (status === 409) {
        entry.state = "in";
        refuse(entry.code, "already checked in, at another door or before this sync");
      } else if (status === 404) {
        entry.state = "refused";
        refuse(entry.code, "not a valid ticket any more (refunded or void)");
      } else {
        // Busy, failing, or not allowed: kept, and tried again later.
        return render();
      }
      offline = false;
      store.save();
      render();
      sync();
    }, function () {
      syncing = false;
      offline = !signedOut;
      render();
    });
  }

  function refuse(code, why) {
    store.data.refused.push({ code: code, why: why });
  }

  // ---- What the page says about all this.

  function render() {
    if (!networkLine) return;
    var waiting = pending().length;
    if (signedOut) {
      networkLine.textContent = "Signed out: log in again (another tab will do) so the check-ins can sync.";
    } else if (!key) {
      networkLine.textContent = "This page cannot check codes offline: " + whyNoKey;
    } else if (offline || !navigator.onLine) {
      networkLine.textContent = "Offline: codes are checked on this device with the event's key.";
    } else {
      networkLine.textContent = "Online. Without a network, codes are checked on this device and sync when it is back.";
    }
    pendingLine.textContent = waiting === 0
      ? "No check-in is waiting to sync."
      : waiting + (waiting === 1 ? " check-in" : " check-ins") + " made offline waiting to sync.";
    renderRefused();
  }

  function renderRefused() {
    refusedBox.textContent = "";
    if (!store.data.refused.length) return;
    var heading = document.createElement("h3");
    heading.textContent = "Refused by EventHive when synced";
    var list = document.createElement("ul");
    list.className = "door-refused";
    store.data.refused.forEach(function (refusal) {
      var item = document.createElement("li");
      var code = document.createElement("code");
      code.className = "code";
      code.textContent = refusal.code;
      item.appendChild(code);
      item.appendChild(document.createTextNode(": " + refusal.why + "."));
      list.appendChild(item);
    });
    refusedBox.appendChild(heading);
    refusedBox.appendChild(list);
  }

  // ---- The camera, where the browser reads QR codes; else the page says to type.

  function setUpCamera() {
    var note = document.getElementById("camera-note");
    var controls = document.querySelector("[data-camera-controls]");
    var video = document.getElementById("camera-view");
    var toggle = document.getElementById("camera-toggle");
    var cannot = "This browser cannot scan with the camera: type the code, or use a handheld scanner that types it into the field.";
    if (!note || !("BarcodeDetector" in window) || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      if (note) note.textContent = cannot;
      return;
    }
    window.BarcodeDetector.getSupportedFormats().then(function (formats) {
      if (formats.indexOf("qr_code") < 0) {
        note.textContent = cannot;
        return;
      }
      var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      var stream = null;
      var inView = "", seenAt = 0;
      controls.hidden = false;
      note.textContent = "Scan the ticket's QR code with the camera, or type the code.";
      toggle.addEventListener("click", function () { if (stream) stop(); else start(); });

      function start() {
        navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (opened) {
          stream = opened;
          cameraOn = true;
          video.srcObject = stream;
          video.hidden = false;
          video.play();
          toggle.textContent = "Stop the camera";
          look();
        }, function () {
          note.textContent = "The camera could not be used (no permission, or there is none). Type the code instead.";
        });
      }

      function stop() {
        stream.getTracks().forEach(function (track) { track.stop(); });
        stream = null;
        cameraOn = false;
        video.hidden = true;
        toggle.textContent = "Scan with the camera";
      }

      function look() {
        if (!stream) return;
        detector.detect(video).then(function (found) {
          var now = Date.now();
          var value = found.length ? found[0].rawValue : "";
          // A code held in view is one scan; it counts again once it has left the view.
          if (value && value !== inView) {
            field.value = value;
            check(value);
          }
          if (value) {
            inView = value;
            seenAt = now;
          } else if (now - seenAt > 1500) {
            inView = "";
          }
        }, function () { /* a frame it could not read */ }).then(function () { setTimeout(look, 250); });
      }
    }, function () { note.textContent = cannot; });
  }

  // ---- Start.

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var code = field.value.trim();
    if (!code) return show("empty");
    check(code);
  });
  window.addEventListener("online", function () { offline = false; render(); sync(); });
  window.addEventListener("offline", function () { offline = true; render(); });
  setInterval(sync, 5000);
  importKey();
  setUpCamera();
  render();
  sync();
  form.setAttribute("data-ready", "");
})();
