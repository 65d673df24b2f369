// Airlock dashboard: live updates over one EventSource. Pages work without this script;
// it only adds new feed rows as they happen and refreshes the parts of a page that a new
// journal event touches. Everything it inserts was rendered (and escaped) by the server.
(function () {
  "use strict";
  var feed = document.getElementById("feed");
  var status = document.getElementById("live-status");
  var parts = Array.prototype.slice.call(document.querySelectorAll("[data-refresh]"));
  if (!feed && parts.length === 0) return;
  var url = feed && feed.dataset.live ? feed.dataset.live : "/live";
  if (feed && !feed.dataset.live) return;

  var pending = new Map();
  function refresh(el) {
    if (pending.has(el)) return;
    pending.set(el, setTimeout(function () {
      pending.delete(el);
      fetch(el.dataset.refresh, { headers: { Accept: "text/html-fragment" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { el.innerHTML = html; } });
    }, 250));
  }

  var es = new EventSource(url);
  es.onopen = function () {
    if (status) { status.textContent = "live"; status.classList.add("on"); }
  };
  es.onerror = function () {
    if (status) { status.textContent = "reconnecting…"; status.classList.remove("on"); }
  };
  es.addEventListener("row", function (ev) {
    if (!feed) return;
    var t = document.createElement("template");
    t.innerHTML = ev.data.trim();
    var row = t.content.firstElementChild;
    if (!row) return;
    row.classList.add("fresh");
    feed.insertBefore(row, feed.firstChild);
    while (feed.children.length > 200) feed.removeChild(feed.lastChild);
    var empty = document.querySelector("p.empty");
    if (empty) empty.remove();
  });
  es.addEventListener("tick", function (ev) {
    var t;
    try { t = JSON.parse(ev.data); } catch (e) { return; }
    parts.forEach(function (el) {
      var kinds = (el.dataset.on || "").split(" ");
      if (kinds.indexOf(t.kind) < 0) return;
      if (el.dataset.change && el.dataset.change !== t.change) return;
      refresh(el);
    });
  });
})();
