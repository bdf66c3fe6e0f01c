/* Mainland website chat widget (#18). Embed: <script src="BASE/chat/widget.js" data-channel="NAME" defer>
 * No dependencies, no cookies, no inline styles or eval (works under a strict CSP: the styles are a
 * constructed stylesheet in a shadow root). Messages are shown with textContent only: never HTML.
 * Unsent messages wait in localStorage with their client id and are sent again after a network drop or a
 * reload; the server stores one message per client id, so nothing is lost and nothing doubled. While open it
 * waits for news with a long poll (the server answers when what it shows changed), and tells the team
 * when the visitor types and has read a reply. Files go up as their own messages (raw body, client id in a
 * header: a retry is stored once) and come down with the visitor token, shown from blob: URLs. A file waiting
 * to go up keeps its bytes in the widget's own IndexedDB database until the server has it (without IndexedDB,
 * in the page only: after a reload the visitor is asked to attach it again). See docs/chat.md.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.dataset.channel) return;
  var channel = script.dataset.channel;
  var base = new URL(script.src, location.href).origin;
  var api = base + "/chat/" + encodeURIComponent(channel);
  var store = "mainland-chat:" + base + ":" + channel + ":", FILES = store + "files";
  var POLL_OPEN = 3000, POLL_MAX = 30000, POLL_CLOSED = 30000, WAIT = 25, TYPING_EVERY = 3000, TYPING_IDLE = 5000;

  function load(key, fallback) {
    try { var v = localStorage.getItem(store + key); return v === null ? fallback : JSON.parse(v); }
    catch (e) { return fallback; }
  }
  function save(key, value) {
    try { localStorage.setItem(store + key, JSON.stringify(value)); } catch (e) { /* private mode: this page only */ }
  }
  function randomToken() {
    var bytes = new Uint8Array(32);
    crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode.apply(null, bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  var visitor = load("visitor", null);
  if (!visitor) {  // a new conversation (or the browser's storage was cleared): no earlier file's bytes stay
    visitor = randomToken();
    save("visitor", visitor);
    try { indexedDB.deleteDatabase(FILES).onerror = function (event) { event.preventDefault(); }; } catch (e) { /* none */ }
  }
  // [{client_id, text}] or [{client_id, file, name, size}] not yet confirmed by the server. After a reload a
  // file's entry has no `file` until its bytes are read back from IndexedDB (`restored`).
  var pending = load("pending", []);
  var kept = pending.filter(isFile).map(function (p) { return p.client_id; });  // ids with bytes in IndexedDB
  var messages = [];                   // the server's history
  var words = {}, config = null, isOpen = false, typing = false, timer = null, sending = false, suggestTimer = null;
  var version = "", generation = 0, backoff = 0, typist = "", typedAt = 0, idleTimer = null;
  var typingSent = Promise.resolve();
  var blobs = {};  // file id -> Promise of a blob: URL (fetched once, with the visitor token)
  var notice = "";  // stays on the alert line until the visitor attaches a file

  // A waiting file's bytes in the widget's own IndexedDB database, keyed by client id. Every failure (no
  // IndexedDB, private mode, blocked, full) rejects, and the caller carries on without it.
  var filesDb = null;
  function isFile(p) { return p.size > 0; }  // an empty file is refused before it is queued
  function bytes(mode, act) {
    filesDb = filesDb || new Promise(function (ok, fail) {
      var open = indexedDB.open(FILES, 1);
      open.onupgradeneeded = function () { open.result.createObjectStore("f"); };
      open.onsuccess = function () { ok(open.result); };
      open.onerror = function (event) { event.preventDefault(); fail(open.error); };
      setTimeout(fail, 5000);  // an open that never answers (seen in Safari) counts as no IndexedDB
    });
    return filesDb.then(function (db) {
      return new Promise(function (ok, fail) {
        var tx = db.transaction("f", mode), done = act(tx.objectStore("f"));
        tx.oncomplete = function () { ok(done.result); };
        tx.onabort = function () { fail(tx.error); };
      });
    });
  }

  function request(method, path, body, since, raw) {
    var init = {method: method, headers: {"X-Mainland-Visitor": visitor}, credentials: "omit", cache: "no-store"};
    // In a header, not the URL: one URL keeps one cached CORS preflight for every long poll.
    if (since !== undefined) init.headers["X-Mainland-Since"] = since;
    if (script.dataset.userId) {  // signed in by the site: the same chat on every device
      init.headers["X-Mainland-User"] = script.dataset.userId;
      init.headers["X-Mainland-User-Hash"] = script.dataset.userHash || "";
    }
    if (body) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    if (raw) { for (var k in raw.headers) init.headers[k] = raw.headers[k]; init.body = raw.body; }
    if (raw && raw.blob) return fetch(api + path, init).then(function (r) { if (!r.ok) throw r.status; return r.blob(); });
    return fetch(api + path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) { data.status = r.status; return data; });
    });
  }

  // The page -------------------------------------------------------------------------------------
  var host = document.createElement("div");
  host.setAttribute("data-mainland-chat", channel);
  var root = host.attachShadow({mode: "open"});
  var css = ":host{all:initial}*{box-sizing:border-box;font:15px/1.4 system-ui,sans-serif}" +
    ".b{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:28px;padding:14px 20px;" +
    "color:#fff;cursor:pointer;box-shadow:0 2px 8px #0004}" +
    ".b:focus-visible,button:focus-visible,textarea:focus-visible,a:focus-visible{outline:3px solid #1a73e8;outline-offset:2px}" +
    ".w{position:fixed;right:20px;bottom:84px;z-index:2147483000;width:min(370px,calc(100vw - 24px));" +
    "height:min(560px,calc(100vh - 110px));display:flex;flex-direction:column;background:#fff;color:#1f2328;" +
    "border-radius:12px;box-shadow:0 6px 24px #0005;overflow:hidden}.w[hidden]{display:none}" +
    ".h{display:flex;align-items:center;justify-content:space-between;padding:12px 14px;color:#fff}" +
    ".h h2{margin:0;font-weight:600;font-size:16px}.x{background:none;border:0;color:#fff;font-size:22px;cursor:pointer;padding:0 6px}" +
    ".l{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f6f8fa}" +
    ".m{max-width:85%;padding:8px 11px;border-radius:10px;white-space:pre-wrap;overflow-wrap:anywhere}" +
    ".v{align-self:flex-end;color:#fff}.t{align-self:flex-start;background:#fff;border:1px solid #d0d7de}" +
    ".g{align-self:flex-start;color:#444}.s{font-size:12px;opacity:.85;margin-top:2px}" +
    ".a{padding:8px 12px;border-top:1px solid #d0d7de;background:#fff}.a p{margin:0 0 4px;font-size:13px;color:#444}" +
    ".a a{display:block;color:#0b57d0;margin:2px 0}" +
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #d0d7de;background:#fff}" +
    "textarea{flex:1;resize:none;height:44px;border:1px solid #8c959f;border-radius:8px;padding:8px;color:#1f2328;background:#fff}" +
    "form button{border:0;border-radius:8px;padding:0 14px;color:#fff;cursor:pointer}" +
    ".st{margin:0;padding:6px 14px;font-size:13px;color:#3d4650;background:#fff;border-bottom:1px solid #d0d7de}" +
    ".st:empty{display:none}.e{color:#b42318;font-size:13px;padding:0 12px 6px;background:#fff;overflow-wrap:anywhere}.e:empty{display:none}" +
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}" +
    ".em{padding:6px 12px;border-top:1px solid #d0d7de;background:#fff;font-size:13px;color:#3d4650}" +
    ".em[hidden],.em form[hidden]{display:none}.em p{margin:0}.em .k{background:none;border:0;padding:2px 0;color:#0b57d0;" +
    "text-decoration:underline;cursor:pointer;font-size:13px}.em form{padding:4px 0 0;border:0;gap:6px}" +
    ".em input{flex:1;min-width:0;border:1px solid #8c959f;border-radius:8px;padding:6px 8px;color:#1f2328;background:#fff}" +
    ".em input:focus-visible,.em .k:focus-visible{outline:3px solid #1a73e8;outline-offset:2px}" +
    ".th{display:block;max-width:min(100%,240px);max-height:160px;object-fit:contain;border-radius:6px;margin:4px 0}.th[hidden]{display:none}" +
    ".f{display:block;background:none;border:0;padding:2px 0;color:inherit;text-decoration:underline;cursor:pointer;" +
    "text-align:left;font-size:14px;overflow-wrap:anywhere}form .at{background:#fff;color:#1f2328;border:1px solid #8c959f;" +
    "padding:0 10px;display:flex;align-items:center}form .at[hidden]{display:none}.fi{display:none}" +
    ".r{align-self:flex-start;display:flex;gap:6px;flex-wrap:wrap}.r button{min-width:40px;min-height:40px;border:1px solid #8c959f;" +
    "border-radius:8px;background:#fff;color:#1f2328;cursor:pointer;font-weight:600}" +
    "@media (max-width:480px){.w{left:12px;right:12px;width:auto;bottom:76px}.b{right:12px;bottom:12px}}";
  if (root.adoptedStyleSheets !== undefined && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    root.adoptedStyleSheets = [sheet];
  } else {
    var style = document.createElement("style");
    style.textContent = css;
    root.appendChild(style);
  }

  // A paperclip drawn as SVG: an emoji would need a font the visitor's system may lack.
  function clip() {
    var ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg"), path = document.createElementNS(ns, "path");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "20");
    svg.setAttribute("height", "20");
    svg.setAttribute("aria-hidden", "true");
    path.setAttribute("d", "M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5");
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "2");
    path.setAttribute("stroke-linecap", "round");
    svg.appendChild(path);
    return svg;
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  var button = el("button", "b");
  button.type = "button";
  button.setAttribute("aria-expanded", "false");
  var panel = el("div", "w");
  panel.hidden = true;
  panel.id = "mainland-chat-window";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-labelledby", "mainland-chat-title");
  button.setAttribute("aria-controls", panel.id);
  var head = el("div", "h"), title = el("h2");
  title.id = "mainland-chat-title";
  var close = el("button", "x", "\u00d7");
  close.type = "button";
  head.append(title, close);
  var log = el("div", "l");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.tabIndex = 0;
  var articles = el("div", "a");
  articles.hidden = true;
  var error = el("div", "e");
  error.setAttribute("role", "alert");
  var form = el("form"), label = el("label", "sr"), input = el("textarea"), send = el("button");
  input.id = "mainland-chat-input";
  label.htmlFor = input.id;
  input.rows = 2;
  send.type = "submit";
  var attach = el("button", "at"), picker = el("input", "fi");
  attach.appendChild(clip());
  attach.type = "button";
  picker.type = "file";
  picker.tabIndex = -1;
  picker.setAttribute("aria-hidden", "true");
  form.append(attach, picker, label, input, send);
  var status = el("p", "st");
  panel.append(head, status, log, articles, error, form);
  root.append(button, panel);

  function paint(node, background) { node.style.background = background; }

  function applyConfig(data) {
    config = data;
    words = data.words || {};
    button.textContent = words.open;
    close.setAttribute("aria-label", words.close);
    title.textContent = data.title;
    label.textContent = words.label;
    input.placeholder = words.label;
    input.maxLength = data.max_text_chars;
    send.textContent = words.send;
    var files = data.files || {};
    attach.hidden = !files.max_bytes;
    attach.setAttribute("aria-label", words.attach);
    attach.title = words.attach_hint.replace("{size}", megabytes(files.max_bytes));
    picker.accept = (files.extensions || []).join(",");
    [button, head, send].forEach(function (n) { paint(n, data.color); });
    var a = data.availability || {}, when = "";
    if (a.answer_by) {
      when = new Intl.DateTimeFormat(data.language, {weekday: "long", hour: "2-digit", minute: "2-digit"})
        .format(new Date(a.answer_by));
    }
    status.textContent = (a.expect || "").replace("{when}", when);
    render();
  }

  function bubble(text, cls, status, files) {
    var node = el("div", "m " + cls);
    if (cls === "v") paint(node, config.color);
    if (text) node.appendChild(document.createTextNode(text));
    (files || []).forEach(function (f) { node.appendChild(fileView(f)); });
    if (status) node.appendChild(el("div", "s", status));
    return node;
  }

  // Files -----------------------------------------------------------------------------------------
  function megabytes(bytes) { return String(Math.round((bytes || 0) / 104857.6) / 10); }
  function fileUrl(f) {
    if (!blobs[f.id]) {
      blobs[f.id] = request("GET", "/files/" + f.id, null, undefined, {headers: {}, blob: true})
        .then(function (blob) { return URL.createObjectURL(blob); });
      blobs[f.id].catch(function () { delete blobs[f.id]; });
    }
    return blobs[f.id];
  }
  // A picture as a thumbnail (where the site's CSP allows blob: images), and every file as a download.
  function fileView(f) {
    var size = f.size ? " \u00b7 " + (f.size < 1048576 ? Math.max(1, Math.round(f.size / 1024)) + " KB" : megabytes(f.size) + " MB") : "";
    var box = el("div"), link = el("button", "f", f.name + size);
    link.type = "button";
    link.setAttribute("aria-label", words.download.replace("{name}", f.name));
    if (f.id && f.image) {
      var img = el("img", "th");
      img.alt = f.name;
      img.hidden = true;
      img.addEventListener("load", function () {
        var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
        img.hidden = false;
        if (atBottom) log.scrollTop = log.scrollHeight;  // the picture pushed the newest message down
      });
      img.addEventListener("error", function () { img.hidden = true; });
      fileUrl(f).then(function (url) { img.src = url; }, function () {});
      box.appendChild(img);
    }
    if (f.id) link.addEventListener("click", function () {
      fileUrl(f).then(function (url) {
        var a = el("a");
        a.href = url;
        a.download = f.name;
        root.appendChild(a);
        a.click();
        a.remove();
      }, function () {});
    }); else link.disabled = true;
    box.appendChild(link);
    return box;
  }

  function allowedFile(file) {
    var files = config.files || {}, type = (file.type || "").toLowerCase();
    if (file.size > files.max_bytes) return words.file_too_large.replace("{size}", megabytes(files.max_bytes));
    if (!file.size) return words.file_empty;
    // No type from the browser: the server reads it from the name and the bytes.
    if (type && (files.types || []).indexOf(type) < 0) return words.file_type;
    return "";
  }
  function addFiles(list) {
    Array.prototype.forEach.call(list || [], function (file) {
      var refused = allowedFile(file);
      if (refused) { error.textContent = refused; return; }
      error.textContent = notice = "";
      var id = uuid();
      pending.push({client_id: id, file: file, name: file.name, size: file.size});
      kept.push(id);
      bytes("readwrite", function (s) { return s.put(file, id); }).catch(function () { /* this page only */ });
    });
    savePending();
    articles.hidden = true;
    render();
    log.scrollTop = log.scrollHeight;
    flush();
  }
  // A file's name and size wait in localStorage with the messages; its bytes go once it has left the queue.
  function savePending() {
    save("pending", pending.map(function (p) { return isFile(p) ? {client_id: p.client_id, name: p.name, size: p.size} : p; }));
    var waiting = pending.map(function (p) { return p.client_id; });
    kept = kept.filter(function (id) {
      if (waiting.indexOf(id) >= 0) return true;
      bytes("readwrite", function (s) { return s.delete(id); }).catch(function () { /* nothing was kept */ });
    });
  }

  // After a reload: the waiting files' bytes are read back before the queue goes on. A file whose bytes are
  // gone (no IndexedDB, or it was full) leaves the queue; `restored` gives their names, to tell the visitor.
  var restored = Promise.all(pending.map(function (p) {
    return isFile(p) && bytes("readonly", function (s) { return s.get(p.client_id); })
      .then(function (file) { p.file = file; }, function () { /* gone */ });
  })).then(function () {
    var gone = pending.filter(function (p) { return isFile(p) && !p.file; });
    if (gone.length) {
      pending = pending.filter(function (p) { return gone.indexOf(p) < 0; });
      savePending();
    }
    return gone.map(function (p) { return p.name; });
  });

  function render() {
    if (!config) return;
    var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.replaceChildren(bubble(config.greeting, "g"));
    var known = {}, last = null;
    messages.forEach(function (m) { if (m.from === "visitor") last = m; });
    messages.forEach(function (m) {
      if (m.client_id) known[m.client_id] = true;
      // The visitor's latest message says how far it got: delivered (stored), then read by the team.
      var mark = m === last ? (m.status === "read" ? words.read : words.received) : "";
      var who = m.from === "visitor" ? mark : (m.name || words.team);
      if (m.by_email) who = (who ? who + " \u00b7 " : "") + words.by_email;
      log.appendChild(bubble(m.text, m.from === "visitor" ? "v" : "t", who, m.files));
    });
    var final = messages[messages.length - 1];
    if (final && final.survey && !pending.length) log.appendChild(rating());
    pending.forEach(function (p) {
      if (known[p.client_id]) return;
      var state = isFile(p) ? (navigator.onLine ? words.uploading : words.file_failed) : (navigator.onLine ? words.sending : words.failed);
      log.appendChild(bubble(p.text, "v", state, isFile(p) ? [{name: p.name}] : null));
    });
    if (typing) log.appendChild(el("div", "m g", typist ? words.typing_name.replace("{name}", typist) : words.typing));
    if (atBottom) log.scrollTop = log.scrollHeight;
    renderEmail();
  }

  // Talking to Mainland ----------------------------------------------------------------------------
  // With `wait`, a long poll: the server answers once what it shows differs from our `version`.
  function refresh(wait) {
    var path = wait ? "/messages?wait=" + WAIT : "/messages";
    return request("GET", path, null, wait ? version : undefined).then(function (data) {
      if (!data.ok) return data;
      messages = data.messages;
      version = data.version || "";
      var stored = {};
      messages.forEach(function (m) { if (m.client_id) stored[m.client_id] = true; });
      pending = pending.filter(function (p) { return !stored[p.client_id]; });
      savePending();
      typing = !!data.typing;
      typist = data.typing_name || "";
      render();
      return Promise.resolve(receipts()).then(function () { return data; });
    });
  }

  // Delivered: the widget has the reply; read: the open window showed it to the visitor.
  function receipts() {
    var seen = isOpen && document.visibilityState === "visible";
    var delivered = [], read = [];
    messages.forEach(function (m) {
      if (m.from !== "team") return;
      if (m.status === "sent") delivered.push(m.id);
      if (seen && m.status !== "read") read.push(m.id);
    });
    if (!delivered.length && !read.length) return;
    return request("POST", "/receipts", {delivered: delivered, read: read}).then(function (data) {
      if (data.ok && data.moved) {
        messages.forEach(function (m) {
          if (read.indexOf(m.id) >= 0) m.status = "read"; else if (delivered.indexOf(m.id) >= 0) m.status = "delivered";
        });
      }
    });
  }

  function flush() {
    if (sending || !pending.length) return Promise.resolve();
    var next = pending[0];
    if (isFile(next) && !next.file) return restored.then(flush);  // its bytes are still being read back
    sending = true;
    var sent = next.file ? request("POST", "/files", null, undefined, {body: next.file, headers: {
      "Content-Type": next.file.type || "application/octet-stream", "X-Mainland-Client-Id": next.client_id,
      "X-Mainland-File-Name": encodeURIComponent(next.name)}}) : request("POST", "/messages", next);
    return sent.then(function (data) {
      sending = false;
      if (data.ok || (data.status >= 400 && data.status < 500 && data.status !== 429)) {
        // Stored (or refused for good: keeping it would resend it forever).
        pending = pending.filter(function (p) { return p.client_id !== next.client_id; });
        savePending();
        if (data.ok && data.message && !messages.some(function (m) { return m.id === data.message.id; })) {
          messages.push(data.message);
        }
        error.textContent = data.ok ? notice : (data.message || "");
        render();
        return flush();
      }
      if (data.status === 429) error.textContent = words.busy;
      render();
    }).catch(function () { sending = false; render(); });
  }

  // One loop at a time: a newer tick (open, back online) ends the older loop's turns.
  function tick() {
    clearTimeout(timer);
    var mine = ++generation;
    flush().then(function () { return refresh(false); }).catch(function () { /* offline */ }).then(function () {
      if (mine === generation) listen(mine);
    });
  }

  function listen(mine) {
    // Closed and nothing to send: no requests at all until the visitor opens the chat again.
    if (!isOpen) { if (pending.length) timer = setTimeout(tick, POLL_CLOSED); return; }
    refresh(true).then(function (data) {
      if (mine !== generation) return;
      if (data.ok && !data.busy) { backoff = 0; listen(mine); } else again(mine, data.retry_ms);
    }, function () { if (mine === generation) again(mine, 0); });
  }

  // Offline, refused, or the server holds as many waits as it can: ask again later, later each time.
  function again(mine, hint) {
    backoff = Math.min(Math.max(hint || 0, backoff ? backoff * 2 : POLL_OPEN), POLL_MAX);
    timer = setTimeout(function () { if (mine === generation) { flush(); listen(mine); } }, backoff);
  }

  // Typing: reported at most every few seconds while keys are pressed, and once when it stops.
  function reportTyping(on) {
    if (!messages.length) return;  // no conversation yet to show it on
    // One after the other: a "stopped" must never overtake the "typing" before it.
    typingSent = typingSent.then(function () { return request("POST", "/typing", {typing: on}); })
      .catch(function () { /* it goes stale by itself */ });
  }
  function typed() {
    if (!input.value.trim()) { stopTyping(); return; }
    if (Date.now() - typedAt >= TYPING_EVERY) { typedAt = Date.now(); reportTyping(true); }
    clearTimeout(idleTimer);
    idleTimer = setTimeout(stopTyping, TYPING_IDLE);
  }
  function stopTyping() {
    clearTimeout(idleTimer);
    if (!typedAt) return;
    typedAt = 0;
    reportTyping(false);
  }

  function suggest() {
    if (!config || !config.articles || messages.length || pending.length) { articles.hidden = true; return; }
    var q = input.value.trim();
    if (q.length < 3) { articles.hidden = true; return; }
    request("GET", "/articles?lang=" + encodeURIComponent(config.language) + "&q=" + encodeURIComponent(q))
      .then(function (data) {
        var found = (data && data.articles) || [];
        articles.replaceChildren();
        articles.hidden = !found.length;
        if (!found.length) return;
        articles.appendChild(el("p", "", words.suggested));
        found.forEach(function (a) {
          var link = el("a", "", a.title);
          link.href = a.url;
          link.target = "_blank";
          link.rel = "noopener";
          articles.appendChild(link);
        });
      }).catch(function () { articles.hidden = true; });
  }

  // Behaviour --------------------------------------------------------------------------------------
  function setOpen(open) {
    isOpen = open;
    panel.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    save("open", open);
    if (open) { input.focus(); log.scrollTop = log.scrollHeight; tick(); return; }
    button.focus();
    stopTyping();
    generation++;  // the loop ends; a message still waiting is tried again later
    clearTimeout(timer);
    if (pending.length) timer = setTimeout(tick, POLL_CLOSED);
  }
  button.addEventListener("click", function () { setOpen(!isOpen); });
  close.addEventListener("click", function () { setOpen(false); });
  panel.addEventListener("keydown", function (event) { if (event.key === "Escape") setOpen(false); });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
  input.addEventListener("input", function () {
    clearTimeout(suggestTimer);
    suggestTimer = setTimeout(suggest, 300);
    typed();
  });
  input.addEventListener("blur", stopTyping);
  function sendText(text) {
    // Kept before it is sent: a reload or a dropped connection cannot lose it.
    pending.push({client_id: uuid(), text: text});
    savePending();
    articles.hidden = true;
    render();
    log.scrollTop = log.scrollHeight;
    stopTyping();
    flush();  // its answer, and the waiting long poll, bring it back stored
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    sendText(text);
  });
  // The satisfaction question, answered with one press: the score goes as the visitor's reply, as if typed.
  function rating() {
    var group = el("div", "r");
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", words.rate);
    [1, 2, 3, 4, 5].forEach(function (score) {
      var choice = el("button", "", String(score));
      choice.type = "button";
      choice.setAttribute("aria-label", words.rate_score.replace("{score}", score));
      choice.addEventListener("click", function () { sendText(String(score)); input.focus(); });
      group.appendChild(choice);
    });
    return group;
  }
  attach.addEventListener("click", function () { picker.click(); });
  picker.addEventListener("change", function () { addFiles(picker.files); picker.value = ""; });
  input.addEventListener("paste", function (event) {
    var files = event.clipboardData && event.clipboardData.files;
    if (files && files.length) { event.preventDefault(); addFiles(files); }
  });
  panel.addEventListener("dragover", function (event) { event.preventDefault(); });
  panel.addEventListener("drop", function (event) {
    event.preventDefault();
    addFiles(event.dataTransfer && event.dataTransfer.files);
  });
  window.addEventListener("online", tick);
  window.addEventListener("offline", render);
  // Back on the tab: what the open window shows is read now.
  document.addEventListener("visibilitychange", function () { if (isOpen) receipts(); });

  // By email (#18): leave an address for answers given while away; on another device, ask for a
  // sign-in link by address. The link brings its token in the page's fragment (never sent to a server),
  // which is taken out of the address bar at once and spent by this browser's visitor token.
  var SIGNIN = "mainland-chat-signin=";
  var signinToken = null;
  function takeSigninToken() {
    if (location.hash.indexOf("#" + SIGNIN) !== 0) return false;
    signinToken = decodeURIComponent(location.hash.slice(SIGNIN.length + 1));
    try { history.replaceState(null, "", location.pathname + location.search); } catch (e) { location.hash = ""; }
    return true;
  }
  takeSigninToken();
  // The link opened in a tab that already shows the page: only the fragment changes.
  window.addEventListener("hashchange", function () {
    if (config && takeSigninToken()) redeemSignin().then(function () { if (isOpen) tick(); else setOpen(true); });
  });
  var emailBox = el("div", "em"), emailNote = el("p"), emailOffer = el("button", "k");
  var emailForm = el("form"), emailLabel = el("label", "sr"), emailInput = el("input"), emailSend = el("button");
  emailOffer.type = "button";
  emailInput.type = "email";
  emailInput.id = "mainland-chat-email";
  emailInput.autocomplete = "email";
  emailLabel.htmlFor = emailInput.id;
  emailSend.type = "submit";
  emailForm.hidden = true;
  emailNote.setAttribute("role", "status");
  emailForm.append(emailLabel, emailInput, emailSend);
  emailBox.append(emailNote, emailOffer, emailForm);
  emailBox.hidden = true;
  panel.insertBefore(emailBox, form);
  var emailMode = null, emailNotice = "", emailSaved = load("email", "");

  function visitorWrote() { return messages.some(function (m) { return m.from === "visitor"; }) || pending.length > 0; }

  function renderEmail() {
    if (!config || !config.email) { emailBox.hidden = true; return; }
    var away = config.availability && config.availability.open === false;
    // Before any message: perhaps this visitor chatted on another device. After one (or while the team
    // is away): where our answer may follow them.
    var mode = !messages.length && !pending.length ? "signin" : (visitorWrote() || away) && !emailSaved ? "followup" : null;
    if (mode !== emailMode) { emailMode = mode; emailForm.hidden = true; }
    var prompt = mode === "signin" ? words.signin_offer : words.email_offer;
    // While the field is open its question stays in view above it (the label itself is for screen readers).
    emailNote.textContent = emailNotice || (mode && !emailForm.hidden ? prompt :
      emailSaved && mode !== "signin" ? words.email_saved.replace("{address}", emailSaved) : "");
    emailNote.hidden = !emailNote.textContent;
    emailOffer.hidden = !mode || !emailForm.hidden;
    emailOffer.textContent = prompt;
    emailLabel.textContent = words.email_label;
    emailInput.placeholder = words.email_label;
    emailSend.textContent = mode === "signin" ? words.signin_send : words.email_save;
    paint(emailSend, config.color);
    emailBox.hidden = emailNote.hidden && !mode;
  }

  emailOffer.addEventListener("click", function () {
    emailForm.hidden = false;
    emailNotice = "";
    renderEmail();
    emailInput.focus();
  });
  emailForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var address = emailInput.value.trim(), mode = emailMode;
    if (!address || !emailInput.checkValidity()) { emailNotice = words.email_invalid; renderEmail(); return; }
    var page = location.href.split("#")[0];
    request("POST", mode === "signin" ? "/signin/request" : "/email", {email: address, lang: config.language, page: page})
      .then(function (data) {
        if (data.status === 429) { emailNotice = words.busy; renderEmail(); return; }
        if (!data.ok) { emailNotice = data.message || words.email_invalid; renderEmail(); return; }
        emailForm.hidden = true;
        emailInput.value = "";
        if (mode === "signin") { emailNotice = words.signin_sent; } else { emailSaved = address; save("email", address); emailNotice = ""; }
        renderEmail();
      }).catch(function () { emailNotice = words.failed; renderEmail(); });
  });

  function redeemSignin() {
    if (!signinToken) return Promise.resolve();
    var token = signinToken;
    signinToken = null;
    return request("POST", "/signin", {token: token}).then(function (data) {
      emailNotice = data.message || words.signin_invalid;
      renderEmail();
    }).catch(function () { /* offline: the link stays unused and can be opened again */ });
  }

  var lang = (document.documentElement.lang || navigator.language || "en").slice(0, 2);
  request("GET", "/config?lang=" + encodeURIComponent(lang)).then(function (data) {
    if (!data.ok) return;
    applyConfig(data);
    (document.body || document.documentElement).appendChild(host);
    restored.then(function (gone) {
      if (gone.length) error.textContent = notice = words.file_lost.replace("{name}", function () { return gone.join(", "); });
      render();
    });
    var opening = !!signinToken;
    redeemSignin().then(function () { if (opening || load("open", false)) setOpen(true); else tick(); });
  }).catch(function () { /* Mainland unreachable: no widget */ });
})();
