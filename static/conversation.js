/* The conversation page: composer (reply / note), send-and-set-status, moving on to the next
 * conversation, live messages and delivery states, presence, the stale-reply hold, a trainee's
 * reply held for review, drafts kept in the browser, and the page's keyboard shortcuts.
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
  var statusBox = document.getElementById("composer-status");
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

  function showStatus(message) {
    if (!statusBox) { return; }
    statusBox.textContent = message || "";
    statusBox.hidden = !message;
  }

  /* A trainee's held replies in the thread, as the server rendered them after sending. */
  function replaceHeld(html) {
    var box = document.getElementById("held-replies");
    if (!box || typeof html !== "string") { return; }
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var fresh = tpl.content.getElementById("held-replies");
    if (fresh) { box.replaceWith(fresh); }
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
  /* The customer types (the website chat's reports; the stream tells when they stop or go quiet). */
  Live.on("customer.typing", function (data) {
    var box = document.getElementById("customer-typing");
    if (!box || !data || data.conversation_id !== conversationId) { return; }
    box.textContent = data.typing ? (text.typing || "{name}").replace("{name}", data.name) : "";
    box.hidden = !data.typing;
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

  /* Drafts: saved on the server 2 s after the agent stops typing (restored on any device, by the
   * page itself); kept in the browser too until the server has them, so a text that never reached
   * the server survives a reload or a crash of the tab. Saves go out one after the other. */
  var composerBox = document.getElementById("composer");
  var draftUrl = composerBox && composerBox.getAttribute("data-draft-url");
  var draftTimers = {};
  var saving = Promise.resolve();
  function draftKey(kind) { return "mainland:draft:" + conversationId + ":" + kind; }
  function remember(kind, value) {
    try {
      if (value) { window.localStorage.setItem(draftKey(kind), value); }
      else { window.localStorage.removeItem(draftKey(kind)); }
    } catch (err) { /* storage may be off */ }
  }
  function saveDraft(kind, value) {
    window.clearTimeout(draftTimers[kind]);
    if (!draftUrl) { return saving; }
    saving = saving.then(function () {
      return fetch(draftUrl, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": Live.csrfToken() },
        body: JSON.stringify({ kind: kind, text: value })
      }).then(function (r) {
        if (!r.ok) { throw new Error("draft not saved"); }
        // The server has it: the browser's copy is no longer needed (unless the text moved on since).
        var area = kind === "note" ? noteText : replyText;
        if (!area || area.value === value) { remember(kind, ""); }
      });
    }).catch(function () {
      if (composerBox && value) { showStatus(composerBox.getAttribute("data-draft-error")); }
    });
    return saving;
  }
  function keepDraft(area, kind) {
    if (!area) { return; }
    try {
      if (!area.value) { area.value = window.localStorage.getItem(draftKey(kind)) || ""; }
    } catch (err) { /* storage may be off */ }
    area.addEventListener("input", function () {
      typed();
      remember(kind, area.value);
      window.clearTimeout(draftTimers[kind]);
      draftTimers[kind] = window.setTimeout(function () { saveDraft(kind, area.value); }, 2000);
    });
  }
  function dropDraft(area, kind) {
    if (area) { area.value = ""; }
    remember(kind, "");
    saveDraft(kind, "");
  }
  keepDraft(replyText, "reply");
  keepDraft(noteText, "note");

  /* Characters left, for channels with a limit. */
  var counter = document.getElementById("chars-left");
  function count() {
    if (!replyText || !counter) { return; }
    var max = Number(replyText.getAttribute("data-max-length"));
    var left = max - Array.from(replyText.value).length;
    var template = left >= 0 ? counter.getAttribute("data-template-left") : counter.getAttribute("data-template-over");
    counter.textContent = template.replace("{n}", String(Math.abs(left)));
    counter.classList.toggle("over", left < 0);
    if (replyForm) {
      replyForm.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = left < 0; });
    }
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
      var buttons = Array.prototype.slice.call(form.querySelectorAll("button[type=submit]"));
      var body = new FormData(form);
      body.set("seen_up_to", String(seenUpTo));
      // FormData leaves out the button that was pressed: its status ("Send + resolve") goes along here.
      var pressed = ev.submitter;
      if (pressed && pressed.name) { body.set(pressed.name, pressed.value); }
      buttons.forEach(function (b) { b.disabled = true; });
      fetch(form.action, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRFToken": Live.csrfToken() }
      }).then(function (response) {
        return response.json().catch(function () { return { ok: false }; });
      }).then(function (data) {
        if (data.ok) { form.dispatchEvent(new CustomEvent("mainland:sent")); }
        if (data.ok && data.next_url) {
          // The conversation is out of the agent's hands: on to the next one of their queue view
          // (after the undo window, when there is one: undoing keeps the agent here).
          // The reply waits out its undo window in the outbox; the next page offers Undo in its toast.
          dropDraft(area, kind);
          saving.then(function () { window.location.assign(data.next_url); });
          return;
        }
        if (data.ok) {
          append(data.html || "");
          setSeen(data.last_id || seenUpTo);
          pending = 0;
          updateBar();
          dropDraft(area, kind);
          showError("");
          showStatus(data.held_for_review ? data.message : "");
          if (data.undo) { showUndo(data.undo); }
          if (data.held_for_review) { replaceHeld(data.review_html); }
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
        buttons.forEach(function (b) { b.disabled = false; });
        count();
      });
    });
  }
  submit(replyForm, replyText, "reply");
  submit(noteForm, noteText, "note");

  /* The reply's files: picked, dropped onto the composer or pasted into the reply box, kept in the
   * file field itself (so the form posts them, with or without this script), shown as chips with
   * their size and a Remove button. The channel's rules (data-* of #reply-files) are checked here
   * first so the agent knows before sending; the server checks them again. */
  var filesBox = document.getElementById("reply-files");
  var fileInput = document.getElementById("reply-files-input");
  var fileChips = document.getElementById("file-chips");
  var fileError = document.getElementById("file-error");
  var chosen = [];
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (all, key) { return key in values ? values[key] : all; });
  }
  function humanSize(bytes) {
    if (bytes >= 1048576) { return (bytes / 1048576).toFixed(1) + " MB"; }
    if (bytes >= 1024) { return (bytes / 1024).toFixed(1) + " kB"; }
    return bytes + " B";
  }
  function typeAllowed(type, types) {
    if (!types.length) { return true; }
    var kind = (type || "").split(";")[0].trim().toLowerCase();
    return types.indexOf(kind) >= 0 || types.indexOf(kind.split("/")[0] + "/*") >= 0;
  }
  function fileProblem(file, count) {
    var rules = filesBox.dataset;
    var max = Number(rules.maxFiles) || 0;
    var maxBytes = Number(rules.maxBytes) || 0;
    var types = rules.types ? rules.types.split(",") : [];
    if (max && count >= max) { return fill(rules.msgCount, { n: max }); }
    if (!file.size) { return fill(rules.msgEmpty, { name: file.name }); }
    if (maxBytes && file.size > maxBytes) { return fill(rules.msgSize, { name: file.name, size: humanSize(maxBytes) }); }
    if (!typeAllowed(file.type, types)) { return fill(rules.msgType, { name: file.name, types: rules.typeNames || types.join(", ") }); }
    // The whole request has a cap of its own (the installation's max_message_bytes): say so before sending.
    var maxTotal = Number(rules.maxTotal) || 0;
    var total = chosen.reduce(function (sum, f) { return sum + f.size; }, file.size);
    if (maxTotal && total > maxTotal * 0.95) { return fill(rules.msgTotal, { size: humanSize(maxTotal) }); }
    return "";
  }
  function syncFiles() {
    if (!fileInput) { return; }
    var transfer = new DataTransfer();
    chosen.forEach(function (file) { transfer.items.add(file); });
    fileInput.files = transfer.files;
    fileChips.textContent = "";
    chosen.forEach(function (file, index) {
      var chip = document.createElement("li");
      chip.className = "file-chip";
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = file.name;
      name.title = file.name;
      var size = document.createElement("span");
      size.className = "size";
      size.textContent = humanSize(file.size);
      var remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "\u00d7";
      remove.setAttribute("aria-label", fill(filesBox.dataset.msgRemove, { name: file.name }));
      remove.addEventListener("click", function () {
        chosen.splice(index, 1);
        syncFiles();
        if (fileInput) { fileInput.focus(); }
      });
      chip.append(name, size, remove);
      fileChips.appendChild(chip);
    });
  }
  function addFiles(list) {
    if (fileInput.disabled) { return; }
    var problems = [];
    Array.prototype.forEach.call(list, function (file) {
      var problem = fileProblem(file, chosen.length);
      if (problem) { problems.push(problem); } else { chosen.push(file); }
    });
    fileError.textContent = problems.join(" ");
    fileError.hidden = !problems.length;
    syncFiles();
  }
  function clearFiles() {
    chosen = [];
    if (fileError) { fileError.hidden = true; }
    syncFiles();
  }
  if (fileInput && filesBox) {
    fileInput.addEventListener("change", function () {
      var picked = Array.prototype.slice.call(fileInput.files);
      syncFiles();  // the field holds what was picked only: put the earlier ones back first
      addFiles(picked);
    });
    if (composerBox) {
      composerBox.addEventListener("dragover", function (ev) {
        if (ev.dataTransfer && Array.prototype.indexOf.call(ev.dataTransfer.types, "Files") >= 0) {
          ev.preventDefault();
          composerBox.classList.add("dragging");
        }
      });
      composerBox.addEventListener("dragleave", function (ev) {
        if (!composerBox.contains(ev.relatedTarget)) { composerBox.classList.remove("dragging"); }
      });
      composerBox.addEventListener("drop", function (ev) {
        composerBox.classList.remove("dragging");
        if (!ev.dataTransfer || !ev.dataTransfer.files.length) { return; }
        ev.preventDefault();
        showTab("reply", false);
        addFiles(ev.dataTransfer.files);
      });
    }
    if (replyText) {
      replyText.addEventListener("paste", function (ev) {
        var files = ev.clipboardData && ev.clipboardData.files;
        if (files && files.length) {
          ev.preventDefault();
          addFiles(files);
        }
      });
    }
    replyForm.addEventListener("mainland:sent", clearFiles);
    /* A public conversation whose channel carries files only privately: files wait for "Answer privately". */
    var privateOnly = document.querySelector("#private-reply input[name=private]");
    if (fileInput.getAttribute("data-needs-private") && privateOnly) {
      var gate = function () {
        fileInput.disabled = !privateOnly.checked;
        document.getElementById("file-pick").classList.toggle("disabled", !privateOnly.checked);
        if (!privateOnly.checked && chosen.length) { clearFiles(); }
      };
      privateOnly.addEventListener("change", gate);
      gate();
    }
  }

  /* Ctrl/Cmd+Enter sends with the default (the first submit button: "Send reply" or "Add note");
   * Ctrl/Cmd+Shift+Enter sends and resolves. */
  function sendOnCtrlEnter(area, form) {
    if (!area || !form) { return; }
    area.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter" || !(ev.ctrlKey || ev.metaKey)) { return; }
      var primary = (ev.shiftKey && form.querySelector("button[name=then_status][value=resolved]")) ||
        form.querySelector("button[type=submit]");
      ev.preventDefault();
      if (primary && !primary.disabled) { form.requestSubmit(primary); }
    });
  }
  sendOnCtrlEnter(replyText, replyForm);
  sendOnCtrlEnter(noteText, noteForm);

  /* A returned reply: "Edit and resubmit" puts its text back into the composer. When the composer
   * is empty, the writer's latest returned reply is put there at once. */
  function resubmit(link) {
    var section = link.closest(".held-reply");
    var held = section && section.querySelector(".text");
    if (!held || !replyText) { return false; }
    replyText.value = held.textContent;
    showTab("reply", true);
    count();
    return true;
  }
  document.addEventListener("click", function (ev) {
    var link = ev.target.closest && ev.target.closest("[data-resubmit]");
    if (link && resubmit(link)) { ev.preventDefault(); }
  });
  var returned = document.querySelectorAll("[data-resubmit]");
  if (returned.length && replyText && !replyText.value.trim()) {
    var latest = returned[returned.length - 1].closest(".held-reply");
    var latestText = latest && latest.querySelector(".text");
    if (latestText) { replyText.value = latestText.textContent; count(); }
  }

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

  /* Undo send: a queued reply waits out the undo window in the outbox (inbox/outbox.py). Each
   * undo form counts down; Undo takes the reply back and puts its text into the composer. After
   * "Send + status" the page has moved on already: the toast on the next page offers the undo. */
  function startUndo(form) {
    if (!form || form.getAttribute("data-started")) { return; }
    form.setAttribute("data-started", "1");
    var deadline = Date.now() + Number(form.getAttribute("data-seconds-left") || 0) * 1000;
    var label = form.querySelector(".undo-countdown");
    function tick() {
      var left = Math.ceil((deadline - Date.now()) / 1000);
      if (left > 0) {
        label.textContent = label.getAttribute("data-template").replace("{n}", String(left));
        return;
      }
      window.clearInterval(timer);
      label.textContent = label.getAttribute("data-sending");
      finishUndo(form);
    }
    var timer = window.setInterval(tick, 250);
    form._undoTimer = timer;
    tick();
  }
  function finishUndo(form) {
    window.clearInterval(form._undoTimer);
    var box = document.getElementById("undo-send");
    form.remove();
    if (box && !box.querySelector(".undo-form")) { box.hidden = true; }
  }
  function showUndo(undo) {
    var box = document.getElementById("undo-send");
    if (!box || !undo || !undo.html) { return; }
    var tpl = document.createElement("template");
    tpl.innerHTML = undo.html;
    var fresh = tpl.content.querySelector(".undo-form");
    if (!fresh) { return; }
    box.appendChild(fresh);
    box.hidden = false;
    startUndo(fresh);
  }
  document.querySelectorAll("#undo-send .undo-form").forEach(function (form) { startUndo(form); });
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("undo-form")) { return; }
    ev.preventDefault();
    window.clearInterval(form._undoTimer);
    var button = form.querySelector(".undo-button");
    if (button) { button.disabled = true; }
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": Live.csrfToken() }
    }).then(function (r) {
      return r.json().catch(function () { return { ok: false }; });
    }).then(function (data) {
      finishUndo(form);
      if (!data.ok) { showError(data.error || text.networkError); return; }
      var gone = document.getElementById("message-" + data.message_id);
      if (gone) { gone.remove(); }
      if (replyText) {
        replyText.value = replyText.value.trim() ? data.text + "\n\n" + replyText.value : data.text;
        remember("reply", "");
      }
      showError("");
      showStatus(data.message);
      showTab("reply", true);
      count();
    }).catch(function () {
      if (button) { button.disabled = false; }
      showError(text.networkError);
    });
  });
  /* Ctrl/Cmd+Z in the composer, when there is no text of the agent's own to undo: undo the send. */
  if (composerBox) {
    composerBox.addEventListener("keydown", function (ev) {
      if (ev.key.toLowerCase() !== "z" || !(ev.ctrlKey || ev.metaKey) || ev.shiftKey || ev.altKey) { return; }
      var field = ev.target;
      if ((field.tagName === "TEXTAREA" || field.tagName === "INPUT") && field.value) { return; }
      var forms = document.querySelectorAll("#undo-send .undo-form");
      if (!forms.length) { return; }
      ev.preventDefault();
      forms[forms.length - 1].requestSubmit();
    });
  }

  /* Public or private: the line above Send follows the "answer privately" box. */
  var audience = document.getElementById("reply-audience");
  var privateBox = document.querySelector("#private-reply input[name=private]");
  if (audience && privateBox) {
    privateBox.addEventListener("change", function () {
      audience.textContent = audience.getAttribute(privateBox.checked ? "data-private" : "data-public");
      audience.classList.toggle("audience-public", !privateBox.checked);
      audience.classList.toggle("audience-private", privateBox.checked);
    });
  }

  /* @mention autocomplete in the internal note: "@an" lists the matching agents (a listbox, the
   * textarea points at the active option); arrows move, Enter or Tab inserts the handle the server
   * recognises (inbox/web/conversations.py mention_handle), Escape closes. */
  var mentionList = document.getElementById("mention-list");
  var mentionAgents = noteText ? parse(noteText.getAttribute("data-mentions")) : [];
  var mentionState = null;
  function mentionQuery() {
    var upto = noteText.value.slice(0, noteText.selectionStart);
    var match = /(^|[^\w@.+-])@([\w.+-]*)$/.exec(upto);
    return match ? { start: upto.length - match[2].length - 1, query: match[2].toLowerCase() } : null;
  }
  function closeMentions() {
    mentionState = null;
    if (!mentionList) { return; }
    mentionList.hidden = true;
    mentionList.textContent = "";
    noteText.removeAttribute("aria-activedescendant");
  }
  function highlight(index) {
    var options = mentionList.querySelectorAll("[role=option]");
    if (!options.length) { return; }
    mentionState.active = (index + options.length) % options.length;
    options.forEach(function (option, i) {
      option.setAttribute("aria-selected", String(i === mentionState.active));
      option.classList.toggle("active", i === mentionState.active);
    });
    noteText.setAttribute("aria-activedescendant", options[mentionState.active].id);
    options[mentionState.active].scrollIntoView({ block: "nearest" });
  }
  function pickMention(index) {
    var agent = mentionState && mentionState.matches[index];
    if (!agent) { return; }
    var before = noteText.value.slice(0, mentionState.start);
    var after = noteText.value.slice(noteText.selectionStart);
    var insert = "@" + agent.handle + " ";
    noteText.value = before + insert + after.replace(/^\S*/, "").replace(/^ /, "");
    var caret = before.length + insert.length;
    noteText.setSelectionRange(caret, caret);
    closeMentions();
    noteText.dispatchEvent(new Event("input", { bubbles: true }));
  }
  function openMentions() {
    var found = mentionQuery();
    if (!found) { closeMentions(); return; }
    var matches = mentionAgents.filter(function (a) {
      var words = (a.name || "").toLowerCase().split(/\s+/);
      return [a.handle.toLowerCase(), (a.email || "").toLowerCase(), (a.name || "").toLowerCase()].concat(words)
        .some(function (key) { return key.indexOf(found.query) === 0; });
    }).slice(0, 8);
    mentionState = { start: found.start, matches: matches, active: 0 };
    mentionList.textContent = "";
    if (!matches.length) {
      var none = document.createElement("li");
      none.className = "mention-none";
      none.textContent = composerBox ? composerBox.getAttribute("data-no-mentions") : "";
      mentionList.appendChild(none);
    }
    matches.forEach(function (agent, i) {
      var option = document.createElement("li");
      option.id = "mention-option-" + i;
      option.setAttribute("role", "option");
      var name = document.createElement("span");
      name.className = "mention-name";
      name.textContent = agent.name || agent.email;
      var handle = document.createElement("span");
      handle.className = "mention-handle muted";
      handle.textContent = "@" + agent.handle;
      option.appendChild(name);
      option.appendChild(document.createTextNode(" "));
      option.appendChild(handle);
      option.addEventListener("mousedown", function (ev) { ev.preventDefault(); pickMention(i); });
      mentionList.appendChild(option);
    });
    mentionList.hidden = false;
    if (matches.length) { highlight(0); } else { noteText.removeAttribute("aria-activedescendant"); }
  }
  if (noteText && mentionList && mentionAgents.length) {
    noteText.addEventListener("input", function (ev) {
      if (ev.isTrusted === false && !mentionState) { return; }
      openMentions();
    });
    noteText.addEventListener("keydown", function (ev) {
      if (!mentionState || mentionList.hidden) { return; }
      var has = mentionState.matches.length > 0;
      if (ev.key === "ArrowDown" && has) { ev.preventDefault(); highlight(mentionState.active + 1); }
      else if (ev.key === "ArrowUp" && has) { ev.preventDefault(); highlight(mentionState.active - 1); }
      else if ((ev.key === "Enter" || ev.key === "Tab") && has && !(ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        ev.stopPropagation();
        pickMention(mentionState.active);
      } else if (ev.key === "Escape") { ev.preventDefault(); ev.stopPropagation(); closeMentions(); }
    });
    noteText.addEventListener("blur", function () { window.setTimeout(closeMentions, 100); });
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

/* The queue pane beside the conversation (three panes from 1280 px), loaded after the page so the
 * conversation itself shows at once; on opening, the thread is scrolled to its latest message. */
(function () {
  "use strict";
  var pane = document.getElementById("queue-pane");
  if (pane && window.fetch && window.matchMedia && window.matchMedia("(min-width: 1280px)").matches) {
    fetch(pane.getAttribute("data-pane-src"), { credentials: "same-origin" })
      .then(function (res) { return res.ok ? res.text() : ""; })
      .then(function (html) {
        pane.innerHTML = html;
        var current = pane.querySelector("li.current");
        if (current) { current.scrollIntoView({ block: "center" }); }
      })
      .catch(function () { /* the list stays one click away */ });
  }
  var messages = document.getElementById("messages");
  var composer = document.getElementById("composer");
  if (messages && composer && !window.location.hash && !document.querySelector(".unseen")) {
    var last = messages.lastElementChild;
    if (last && last.getBoundingClientRect().bottom > window.innerHeight) {
      window.scrollTo(0, document.documentElement.scrollHeight);
    }
  }
})();

/* Earlier messages of a long thread: fetched when the agent scrolls near the top or presses the
 * link (which, without this script, opens the whole thread), then put above the ones shown. */
(function () {
  "use strict";
  var link = document.getElementById("earlier-link");
  var messages = document.getElementById("messages");
  if (!link || !messages || !window.fetch) { return; }
  var busy = false;
  function load() {
    var before = link.getAttribute("data-before");
    if (busy || !before || before === "0") { return; }
    busy = true;
    var url = link.getAttribute("data-earlier-url") + "?before=" + encodeURIComponent(before);
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (res) { return res.json(); })
      .then(function (data) {
        if (!data.ok) { return; }
        var height = document.documentElement.scrollHeight;
        messages.insertAdjacentHTML("afterbegin", data.html);
        // Keep the message the agent was reading where it was.
        window.scrollBy(0, document.documentElement.scrollHeight - height);
        link.setAttribute("data-before", String(data.earlier));
        if (!data.earlier) { link.parentNode.hidden = true; }
        else { link.textContent = link.textContent.replace(/\d+/, String(data.earlier)); }
      })
      .catch(function () { /* the link still opens the whole thread */ })
      .then(function () { busy = false; });
  }
  link.addEventListener("click", function (ev) { ev.preventDefault(); load(); });
  if (window.IntersectionObserver) {
    new IntersectionObserver(function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; })) { load(); }
    }, { rootMargin: "200px 0px 0px 0px" }).observe(link);
  }
})();

