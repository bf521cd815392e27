// PiSeduce pages: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // The browser's time zone (an IANA name) for datetime-local fields; the page names it.
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  if (zone) {
    document.querySelectorAll("input[name=tz]").forEach(function (el) { el.value = zone; });
    document.querySelectorAll(".js-tz").forEach(function (el) { el.textContent = zone; });
  }

  // Ask before destructive actions.
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      if (!window.confirm(f.getAttribute("data-confirm"))) { ev.preventDefault(); }
    });
  });

  // Tab inserts a tab in code editors instead of leaving the field.
  document.querySelectorAll("textarea.code").forEach(function (ta) {
    ta.addEventListener("keydown", function (ev) {
      if (ev.key !== "Tab" || ev.shiftKey) { return; }
      ev.preventDefault();
      var s = ta.selectionStart, e = ta.selectionEnd;
      ta.value = ta.value.slice(0, s) + "\t" + ta.value.slice(e);
      ta.selectionStart = ta.selectionEnd = s + 1;
    });
  });

  // Live deployment status: server-sent events update rows in place (no reload); the JSON
  // feed is polled instead when events do not come through.
  var rows = document.querySelectorAll("[data-dep]");
  if (!rows.length) { return; }
  var ids = Array.prototype.map.call(rows, function (r) { return r.getAttribute("data-dep"); });
  var unique = ids.filter(function (v, i) { return ids.indexOf(v) === i; });

  function fmtDuration(s) {
    if (s <= 0) { return ""; }
    if (s < 60) { return s + "s left"; }
    if (s < 3600) { return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s left"; }
    return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m left";
  }

  function update(d) {
    document.querySelectorAll('[data-dep="' + d.id + '"]').forEach(function (row) {
      var st = row.querySelector(".js-state");
      if (st) {
        st.textContent = d.label;
        st.className = "badge js-state " + d.state_class;
        st.title = d.description || "";
      }
      var desc = row.querySelector(".js-description");
      if (desc) {
        desc.textContent = d.description || "";
      }
      var pr = row.querySelector(".js-progress");
      if (pr) {
        pr.hidden = !d.copying;
        var bar = pr.querySelector("progress");
        if (bar) { bar.value = d.percent; bar.setAttribute("aria-valuenow", String(d.percent)); }
        var pct = pr.querySelector(".js-pct");
        if (pct) { pct.textContent = d.percent.toFixed(1) + " %"; }
        var sp = pr.querySelector(".js-speed");
        if (sp) { sp.textContent = d.speed || ""; }
        var eta = pr.querySelector(".js-eta");
        if (eta) { eta.textContent = fmtDuration(d.eta_s); }
      }
      var step = row.querySelector(".js-step");
      if (step) { step.textContent = d.step_text; }
      var qr = row.querySelector(".js-queued-reason");
      if (qr) { qr.textContent = d.queued_reason || ""; qr.hidden = !d.queued_reason; }
      var er = row.querySelector(".js-error");
      if (er) { er.textContent = d.last_error || ""; er.hidden = !d.last_error; }
    });
  }

  var timer = null;
  function poll() {
    fetch("/deployments/status.json?ids=" + unique.join(","), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (body) { (body.deployments || []).forEach(update); schedule(2000); })
      .catch(function () { schedule(10000); });
  }
  function schedule(ms) { clearTimeout(timer); timer = setTimeout(poll, document.hidden ? Math.max(ms, 10000) : ms); }

  // window.__liveMode says which one the page ended up with ("events" or "polling").
  function startPolling() {
    if (window.__liveMode === "polling") { return; }
    window.__liveMode = "polling";
    schedule(1500);
  }
  if (!window.EventSource) { startPolling(); return; }
  var es = new EventSource("/deployments/events?ids=" + unique.join(","));
  // A proxy that buffers answers holds the stream back: nothing in 5 s means poll.
  var fallback = setTimeout(function () { es.close(); startPolling(); }, 5000);
  es.addEventListener("ready", function () { clearTimeout(fallback); window.__liveMode = "events"; });
  es.addEventListener("deployment", function (ev) {
    var d = null;
    try { d = JSON.parse(ev.data); } catch (e) { return; }
    update(d);
  });
  // The browser reconnects by itself after a network error; a refusal closes the stream.
  es.onerror = function () {
    if (es.readyState === EventSource.CLOSED) { clearTimeout(fallback); startPolling(); }
  };
})();

// Live output of a node discovery.
(function () {
  "use strict";
  var box = document.querySelector("[data-discovery][data-live]");
  if (!box) { return; }
  var id = box.getAttribute("data-discovery");
  function poll() {
    fetch("/admin/discovery/" + id + "/status.json", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (d) {
        var st = box.querySelector(".js-dstate");
        st.textContent = d.state;
        st.className = "badge js-dstate " + (d.state === "done" ? "good" : d.state === "failed" ? "bad" : "busy");
        box.querySelector(".js-dwait").hidden = d.state !== "requested";
        var out = box.querySelector(".js-doutput");
        var atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
        out.textContent = d.output || "(no output yet)";
        if (atEnd) { out.scrollTop = out.scrollHeight; }
        var er = box.querySelector(".js-derror");
        er.textContent = d.error || ""; er.hidden = !d.error;
        if (d.active) { setTimeout(poll, 1500); }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1000);
})();

// A port request (on, off, cycle, read the ports) until pitasks ends it: its page updates in
// place; the switch page (data-reload) reloads to show the states read.
(function () {
  "use strict";
  var box = document.querySelector("[data-port-request][data-live]");
  if (!box) { return; }
  var id = box.getAttribute("data-port-request");
  function show(sel, text) { var el = box.querySelector(sel); if (el) { el.textContent = text || ""; el.hidden = !text; } }
  function poll() {
    fetch("/admin/port-requests/" + id + "/status.json", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (d) {
        if (!d.active && box.hasAttribute("data-reload")) { window.location.reload(); return; }
        var st = box.querySelector(".js-pstate");
        if (st) {
          st.textContent = d.state;
          st.className = "badge js-pstate " + (d.state === "done" ? "good" : d.state === "failed" ? "bad" : "busy");
        }
        var wait = box.querySelector(".js-pwait");
        if (wait) { wait.hidden = !d.active; }
        show(".js-presult", d.result);
        show(".js-perror", d.error);
        if (d.active) { setTimeout(poll, 1000); }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1000);
})();
