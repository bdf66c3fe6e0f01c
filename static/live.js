/* Mainland live updates and keyboard shortcuts, shared by the inbox pages (no framework).
 *
 * Live: one EventSource on /events (with ?conversation=<id> when the page has an element with
 * data-live-conversation). Pages subscribe with
 *     Live.on("conversation.new", function (data, id) { ... });
 * Events: hello, conversation.new, conversation.changed, counts, message.new, message.status,
 * message.removed, presence, customer.typing, drafts, notifications, heartbeat, bye (see
 * inbox/web/live.py for their data).
 * The browser reconnects by itself and resumes from the last event id. When the server has no stream
 * to spare it answers at once with what changed and a `retry:` hint: the same EventSource then
 * polls every few seconds, and every event below (browser notifications too) still arrives.
 *
 * Built in, for any page that opts in with markup:
 *   - [data-live-count="notifications"]  the unread notification count (hidden at 0);
 *   - [data-live-count="status:open"], [data-live-count="total"]  conversation counts;
 *   - [data-live-new] with data-template="... {n} ..."  "n new conversations" (click: reload);
 *   - on a conversation page: "Ann has a draft here." (#drafting, made in #composer when missing)
 *     appears and goes as colleagues' drafts come and go; a reply its writer undid leaves the thread.
 *     Both only touch their own elements: what the agent is typing stays as it is.
 *
 * Keys: Live.key("r", handler) binds a shortcut; shortcuts never fire while typing in a text box.
 * "?" shows #shortcuts-help (templates/conversations/_shortcuts.html, in every signed-in page). A list
 * marked [data-keyboard-list] (or the queue's table.queue) whose rows carry data-row-href and
 * data-conversation-id (or data-id and a link to the conversation) gets j/k (move), Enter/o (open),
 * e (resolve) and a (assign to me).
 */
(function () {
  "use strict";

  var EVENTS = ["hello", "conversation.new", "conversation.changed", "counts", "message.new",
                "message.status", "message.removed", "presence", "customer.typing", "drafts", "notifications", "heartbeat", "bye"];
  var handlers = {};
  var keys = {};
  var source = null;
  var lastEventId = null;

  function dispatch(name, data, id) {
    (handlers[name] || []).concat(handlers["*"] || []).forEach(function (fn) {
      try { fn(data, id, name); } catch (err) { if (window.console) { console.error(err); } }
    });
  }

  function connect() {
    if (source || !window.EventSource) { return; }
    var holder = document.querySelector("[data-live-conversation]");
    var url = "/events";
    if (holder) { url += "?conversation=" + encodeURIComponent(holder.getAttribute("data-live-conversation")); }
    source = new EventSource(url);
    EVENTS.forEach(function (name) {
      source.addEventListener(name, function (ev) {
        var data = null;
        try { data = JSON.parse(ev.data); } catch (err) { data = null; }
        if (ev.lastEventId) { lastEventId = ev.lastEventId; }
        dispatch(name, data, ev.lastEventId);
      });
    });
    source.addEventListener("bye", function (ev) {
      var data = {};
      try { data = JSON.parse(ev.data); } catch (err) { data = {}; }
      if (data.reconnect === false) { source.close(); }
    });
    source.addEventListener("error", function () {
      // CLOSED means the browser gave up (signed out: the answer was the sign-in page).
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        window.setTimeout(connect, 30000);
      }
    });
  }

  function csrfToken() {
    var field = document.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }

  /* POST form fields; resolves with [status, json]. */
  function post(url, fields) {
    var body = new FormData();
    Object.keys(fields || {}).forEach(function (k) { body.append(k, fields[k]); });
    body.append("csrf_token", csrfToken());
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrfToken() }
    }).then(function (response) {
      return response.json().catch(function () { return { ok: false }; }).then(function (json) {
        return [response.status, json];
      });
    });
  }

  function isTyping(target) {
    if (!target || !target.tagName) { return false; }
    var tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select" || target.isContentEditable) { return true; }
    if (tag === "input") {
      var type = (target.getAttribute("type") || "text").toLowerCase();
      return ["button", "submit", "checkbox", "radio", "reset", "hidden"].indexOf(type) === -1;
    }
    return false;
  }

  function help(show) {
    var overlay = document.getElementById("shortcuts-help");
    if (!overlay) { return; }
    overlay.hidden = show === undefined ? !overlay.hidden : !show;
    if (!overlay.hidden) {
      var close = overlay.querySelector("[data-shortcuts-close]");
      if (close) { close.focus(); }
    }
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (isTyping(ev.target)) {
      if (ev.key === "Escape") { ev.target.blur(); }
      return;
    }
    if (ev.key === "?") { ev.preventDefault(); help(); return; }
    if (ev.key === "Escape") { help(false); return; }
    var overlay = document.getElementById("shortcuts-help");
    if (overlay && !overlay.hidden) { return; }
    var fn = keys[ev.key];
    if (fn) { ev.preventDefault(); fn(ev); }
  });

  document.addEventListener("click", function (ev) {
    var el = ev.target;
    if (!el || !el.closest) { return; }
    if (el.closest("[data-shortcuts-help]")) { ev.preventDefault(); help(); }
    else if (el.closest("[data-shortcuts-close]")) { ev.preventDefault(); help(false); }
    else if (el.id === "shortcuts-help") { help(false); }
  });

  /* Keyboard moves in a list of conversations (the queue page). Rows: [data-row-href] with
   * data-conversation-id, or table rows with data-id and a link to the conversation. */
  function rowHref(row) {
    if (row.getAttribute("data-row-href")) { return row.getAttribute("data-row-href"); }
    var link = row.querySelector("a[href^='/conversations/']");
    return link ? link.getAttribute("href") : null;
  }
  function rowId(row) { return row.getAttribute("data-conversation-id") || row.getAttribute("data-id"); }
  function bindList(list) {
    var rows = function () {
      return Array.prototype.slice.call(list.querySelectorAll("[data-row-href], tbody tr[data-id]"))
        .filter(function (row) { return rowHref(row); });
    };
    var current = -1;
    function select(index) {
      var all = rows();
      if (!all.length) { return; }
      current = Math.max(0, Math.min(all.length - 1, index));
      all.forEach(function (row, i) {
        row.classList.toggle("selected", i === current);
        row.setAttribute("aria-selected", i === current ? "true" : "false");
      });
      all[current].scrollIntoView({ block: "nearest" });
    }
    function selected() { var all = rows(); return current >= 0 ? all[current] : null; }
    function act(fields, path) {
      var row = selected();
      if (!row) { return; }
      post("/conversations/" + rowId(row) + path, fields).then(function (res) {
        if (res[1] && res[1].ok) { window.location.reload(); }
        else if (res[1] && res[1].error) { window.alert(res[1].error); }
      });
    }
    keys.j = function () { select(current + 1); };
    keys.k = function () { select(current - 1); };
    keys.Enter = keys.o = function () { var row = selected(); if (row) { window.location.href = rowHref(row); } };
    keys.e = function () { act({ status: "resolved" }, "/status"); };
    keys.a = function () { act({ assignee: "me" }, "/assign"); };
  }

  function setCount(el, n) {
    el.textContent = String(n);
    if (el.getAttribute("data-live-count") === "notifications") { el.hidden = !n; }
  }

  var newConversations = 0;

  window.Live = {
    /* Subscribe to an event ("*" for all); returns a function that unsubscribes. */
    on: function (name, fn) {
      (handlers[name] = handlers[name] || []).push(fn);
      connect();
      return function () { handlers[name] = (handlers[name] || []).filter(function (f) { return f !== fn; }); };
    },
    /* Bind a keyboard shortcut (a KeyboardEvent.key such as "j", "?" or "Enter"). */
    key: function (key, fn) { keys[key] = fn; },
    post: post,
    csrfToken: csrfToken,
    isTyping: isTyping,
    help: help,
    lastEventId: function () { return lastEventId; }
  };

  Live.on("notifications", function (data) {
    document.querySelectorAll("[data-live-count=notifications]").forEach(function (el) { setCount(el, data.unread); });
  });
  /* Browser notifications: the stream's `latest` (only kinds the agent wants in the browser) becomes a
   * system notification once the agent allowed them ([data-browser-notifications-allow] asks);
   * a click opens the conversation. The tag makes several open tabs show one. */
  Live.on("notifications", function (data) {
    var latest = data && data.latest;
    if (!latest || !window.Notification || Notification.permission !== "granted") { return; }
    var shown = new Notification("Mainland", { body: latest.text, tag: "mainland-notification-" + latest.id });
    shown.onclick = function () { window.focus(); window.location.href = latest.url; shown.close(); };
  });
  (function () {
    var box = document.querySelector("[data-browser-notifications]");
    if (!box || !window.Notification) { return; }
    var state = box.querySelector("[data-browser-notifications-state]");
    var allow = box.querySelector("[data-browser-notifications-allow]");
    function show() {
      var permission = Notification.permission;
      allow.hidden = permission !== "default";
      state.textContent = permission === "default" ? "" : (state.getAttribute("data-" + permission) || "");
    }
    box.hidden = false;
    show();
    allow.addEventListener("click", function () {
      var asked = Notification.requestPermission(show);
      if (asked && asked.then) { asked.then(show); }
    });
  })();
  /* Colleagues' drafts in the open conversation: the sentence comes translated from the server. */
  function draftingBox() {
    var box = document.getElementById("drafting");
    var composer = document.getElementById("composer");
    if (box || !composer) { return box; }
    box = document.createElement("p");
    box.id = "drafting";
    box.className = "drafting muted";
    var tabs = composer.querySelector(".composer-tabs");
    if (tabs) { composer.insertBefore(box, tabs); } else { composer.appendChild(box); }
    return box;
  }
  Live.on("drafts", function (data) {
    var holder = document.querySelector("[data-live-conversation]");
    if (!data || !holder || String(data.conversation_id) !== holder.getAttribute("data-live-conversation")) { return; }
    var someone = Boolean(data.agents && data.agents.length);
    var box = someone ? draftingBox() : document.getElementById("drafting");
    if (!box) { return; }
    box.setAttribute("aria-live", "polite");
    box.textContent = data.text || "";
    box.hidden = !someone;
  });
  /* A reply its writer took back within the undo window: gone from every colleague's thread. */
  Live.on("message.removed", function (data) {
    var section = data && document.getElementById("message-" + data.message_id);
    if (section && section.classList.contains("message")) { section.remove(); }
  });
  Live.on("counts", function (data) {
    document.querySelectorAll("[data-live-count]").forEach(function (el) {
      var what = el.getAttribute("data-live-count");
      if (what === "total") { setCount(el, data.total); }
      else if (what.indexOf("status:") === 0) { setCount(el, data.by_status[what.slice(7)] || 0); }
    });
  });
  /* "n new conversations" above the list; made here when the page has none of its own. */
  function newBanner() {
    var banner = document.querySelector("[data-live-new]");
    var strings = document.getElementById("live-strings");
    var list = document.querySelector("[data-keyboard-list], table.queue");
    if (banner || !list || !strings) { return banner; }
    banner = document.createElement("button");
    banner.type = "button";
    banner.className = "live-new";
    banner.setAttribute("data-live-new", "");
    banner.setAttribute("data-template", strings.getAttribute("data-new-conversations") || "{n}");
    banner.hidden = true;
    list.parentNode.insertBefore(banner, list);
    return banner;
  }

  Live.on("conversation.new", function () {
    var banner = newBanner();
    if (!banner) { return; }
    newConversations += 1;
    banner.textContent = (banner.getAttribute("data-template") || "{n}").replace("{n}", String(newConversations));
    banner.hidden = false;
  });
  document.addEventListener("click", function (ev) {
    if (ev.target && ev.target.closest && ev.target.closest("[data-live-new]")) { window.location.reload(); }
  });

  var list = document.querySelector("[data-keyboard-list], table.queue");
  if (list) { bindList(list); }
  connect();
})();
