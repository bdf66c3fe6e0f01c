/* The conversation page: composer (reply / note), live messages and delivery states, presence,
 * the stale-reply hold, drafts kept in the browser, and the page's keyboard shortcuts.
 * Everything here enhances plain forms: without this script the page still works by posting.
 * Needs static/live.js (window.Live). Text from the server is inserted as HTML only when it is a
 * fragment our own templates rendered (autoescaped); names and other data go in as textContent.
 */
(function () {
  "use strict";

  var root = document.getElementById("conversation");
  if (!root || !window.Live) { return; }

  var conversationId = Number(root.getAttribute("data-conversation-id"));
  var me = Number(root.getAttribute("data-agent-id"));
  var seenUpTo = Number(root.getAttribute("data-seen-up-to")) || 0;
  var statusLabels = parse(root.getAttribute("data-status-labels"));
  var text = (document.getElementById("live-text") || root).dataset;
  var messages = document.getElementById("messages");
  var replyForm = document.getElementById("reply-form");
  var noteForm = document.getElementById("note-form");
  var replyText = document.getElementById("reply-text");
  var noteText = document.getElementById("note-text");
  var errorBox = document.getElementById("composer-error");
  var newBar = document.getElementById("new-messages");
  var newButton = document.getElementById("show-new-messages");
  var presenceBox = document.getElementById("presence");
  var pending = 0;
  var base = "/conversations/" + conversationId;

  function parse(json) { try { return JSON.parse(json || "{}"); } catch (err) { return {}; } }

  function setSeen(id) {
    if (id > seenUpTo) {
      seenUpTo = id;
      root.setAttribute("data-seen-up-to", String(id));
    }
    document.querySelectorAll("[data-seen-up-to]").forEach(function (field) {
      if (field.tagName === "INPUT") { field.value = String(seenUpTo); }
    });
  }

  function fragment(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    return Array.prototype.slice.call(tpl.content.querySelectorAll("section.message"));
  }

  function append(html) {
    var first = null;
    fragment(html).forEach(function (section) {
      var existing = document.getElementById(section.id);
      if (existing) { existing.replaceWith(section); }
      else { messages.appendChild(section); }
      first = first || section;
    });
    return first;
  }

  function showError(message, kind) {
    if (!errorBox) { return; }
    errorBox.textContent = message || text.networkError || "";
    errorBox.className = "flash composer-error " + (kind === "held" ? "flash-info held" : "flash-error");
    errorBox.hidden = !message;
  }

  function updateBar() {
    if (!newBar) { return; }
    newBar.hidden = pending === 0;
    if (pending) { newButton.textContent = (text.newMessages || "{n}").replace("{n}", String(pending)); }
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); });
  }

  function fetchNew() {
    return getJSON(base + "/messages?after=" + seenUpTo).then(function (data) {
      if (data && data.ok) {
        append(data.html);
        setSeen(data.last_id);
        pending = 0;
        updateBar();
      }
    });
  }

  function refreshMessage(id) {
    return getJSON(base + "/messages?after=" + (id - 1)).then(function (data) {
      if (!data || !data.ok) { return; }
      fragment(data.html).forEach(function (section) {
        var existing = document.getElementById(section.id);
        if (existing && section.id === "message-" + id) { existing.replaceWith(section); }
      });
    });
  }

  function drafting() {
    return Boolean((replyText && replyText.value.trim()) || (noteText && noteText.value.trim()));
  }

  /* Live messages: appended at once, except while the agent writes — then counted in a bar, so
   * nothing moves under their hands; sending shows them (the stale-reply hold). */
  Live.on("message.new", function (data) {
    if (!data || data.conversation_id !== conversationId || data.message_id <= seenUpTo) { return; }
    if (drafting()) { pending += 1; updateBar(); }
    else { fetchNew(); }
  });
  Live.on("message.status", function (data) {
    if (data && data.conversation_id === conversationId) { refreshMessage(data.message_id); }
  });
  Live.on("conversation.changed", function (data) {
    if (!data || data.id !== conversationId) { return; }
    var holder = document.getElementById("conversation-status");
    var badge = holder && holder.querySelector(".badge");
    if (badge) {
      badge.textContent = statusLabels[data.status] || data.status;
      badge.className = "badge badge-status status-" + data.status;
    }
  });
  if (newButton) { newButton.addEventListener("click", function () { fetchNew(); }); }

  /* Presence: who else is here. */
  function renderPresence(agents) {
    if (!presenceBox) { return; }
    var parts = (agents || []).map(function (a) {
      return (a.state === "typing" ? text.typing : text.viewing || "{name}").replace("{name}", a.name);
    });
    presenceBox.textContent = parts.join(" · ");
    presenceBox.hidden = parts.length === 0;
    presenceBox.classList.toggle("typing", (agents || []).some(function (a) { return a.state === "typing"; }));
  }
  Live.on("presence", function (data) {
    if (data && data.conversation_id === conversationId) { renderPresence(data.agents); }
  });

  var state = "viewing";
  var lastTyped = 0;
  function beat(newState) {
    state = newState;
    fetch(base + "/presence", {
      method: "POST", credentials: "same-origin", keepalive: newState === "gone",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": Live.csrfToken() },
      body: JSON.stringify({ state: newState })
    }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data && data.agents) { renderPresence(data.agents); } })
      .catch(function () {});
  }
  function typed() {
    lastTyped = Date.now();
    if (state !== "typing") { beat("typing"); }
  }
  beat("viewing");
  window.setInterval(function () {
    beat(Date.now() - lastTyped < 6000 ? "typing" : "viewing");
  }, 10000);
  window.setInterval(function () {
    if (state === "typing" && Date.now() - lastTyped >= 6000) { beat("viewing"); }
  }, 2000);
  window.addEventListener("pagehide", function () { beat("gone"); });

  /* Drafts survive a reload or a crash of the tab. */
  function draftKey(kind) { return "mainland:draft:" + conversationId + ":" + kind; }
  function keepDraft(area, kind) {
    if (!area) { return; }
    try {
      if (!area.value) { area.value = window.localStorage.getItem(draftKey(kind)) || ""; }
    } catch (err) { /* storage may be off */ }
    area.addEventListener("input", function () {
      typed();
      try { window.localStorage.setItem(draftKey(kind), area.value); } catch (err) { /* ignore */ }
    });
  }
  function dropDraft(area, kind) {
    if (area) { area.value = ""; }
    try { window.localStorage.removeItem(draftKey(kind)); } catch (err) { /* ignore */ }
  }
  keepDraft(replyText, "reply");
  keepDraft(noteText, "note");

  /* Characters left, for channels with a limit. */
  var counter = document.getElementById("chars-left");
  var sendButton = document.getElementById("send-reply");
  function count() {
    if (!replyText || !counter) { return; }
    var max = Number(replyText.getAttribute("data-max-length"));
    var left = max - Array.from(replyText.value).length;
    var template = left >= 0 ? counter.getAttribute("data-template-left") : counter.getAttribute("data-template-over");
    counter.textContent = template.replace("{n}", String(Math.abs(left)));
    counter.classList.toggle("over", left < 0);
    if (sendButton) { sendButton.disabled = left < 0; }
  }
  if (replyText && counter) { replyText.addEventListener("input", count); count(); }

  /* Tabs: reply or note. */
  var tabReply = document.getElementById("tab-reply");
  var tabNote = document.getElementById("tab-note");
  function showTab(which, focus) {
    if (!replyForm || !noteForm) { return; }
    var note = which === "note";
    replyForm.hidden = note;
    noteForm.hidden = !note;
    tabReply.classList.toggle("current", !note);
    tabNote.classList.toggle("current", note);
    tabReply.setAttribute("aria-selected", String(!note));
    tabNote.setAttribute("aria-selected", String(note));
    var area = note ? noteText : replyText;
    if (focus && area) { area.focus(); }
  }
  if (tabReply && tabNote) {
    tabReply.addEventListener("click", function () { showTab("reply", true); });
    tabNote.addEventListener("click", function () { showTab("note", true); });
    showTab(noteText && noteText.value.trim() && !(replyText && replyText.value.trim()) ? "note" : "reply", false);
  }

  /* Sending: JSON posts; the draft stays until the server took it. */
  function submit(form, area, kind) {
    if (!form) { return; }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var button = form.querySelector("button[type=submit]");
      var body = new FormData(form);
      body.set("seen_up_to", String(seenUpTo));
      if (button) { button.disabled = true; }
      fetch(form.action, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRFToken": Live.csrfToken() }
      }).then(function (response) {
        return response.json().catch(function () { return { ok: false }; });
      }).then(function (data) {
        if (data.ok) {
          append(data.html || "");
          setSeen(data.last_id || seenUpTo);
          pending = 0;
          updateBar();
          dropDraft(area, kind);
          showError("");
          count();
          beat("viewing");
        } else if (data.held) {
          var first = append(data.html || "");
          setSeen(data.last_id || seenUpTo);
          pending = 0;
          updateBar();
          showError(data.error || text.held, "held");
          if (first) { first.classList.add("unseen"); first.scrollIntoView({ block: "center" }); }
        } else {
          showError(data.error || text.networkError);
        }
      }).catch(function () {
        showError(text.networkError);
      }).then(function () {
        if (button) { button.disabled = false; }
        count();
      });
    });
  }
  submit(replyForm, replyText, "reply");
  submit(noteForm, noteText, "note");

  /* Snooze until a local date-time: sent with the browser's own time zone. */
  var snoozeForm = document.getElementById("snooze-form");
  if (snoozeForm) {
    snoozeForm.addEventListener("submit", function () {
      var local = document.getElementById("snooze-until");
      if (local && local.value) {
        var when = new Date(local.value);
        if (!isNaN(when.getTime())) {
          var hidden = document.createElement("input");
          hidden.type = "hidden";
          hidden.name = "snooze_until";
          hidden.value = when.toISOString();
          local.removeAttribute("name");
          snoozeForm.appendChild(hidden);
        }
      }
    });
  }

  /* Shortcuts. */
  function follow(id) { var link = document.getElementById(id); if (link) { window.location.href = link.href; } }
  function press(id) { var el = document.getElementById(id); if (el) { el.click(); } }
  Live.key("j", function () { follow("nav-older"); });
  Live.key("k", function () { follow("nav-newer"); });
  Live.key("r", function () { showTab("reply", true); });
  Live.key("n", function () { showTab("note", true); });
  Live.key("e", function () { press("resolve-button"); });
  Live.key("a", function () {
    var form = document.getElementById("assign-me-form");
    if (form) { form.submit(); }
  });
})();
