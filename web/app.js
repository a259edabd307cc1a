// Lore portal: the Ask page (answers stream over Server-Sent Events from POST /api/ask)
// and the Library page (upload, list, delete, search). Plain DOM code, no framework.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};

// ------------------------------------------------------------------ sign-in
// The session cookie is HttpOnly; the CSRF token bound to it comes from /api/me and goes
// with every state-changing request (the server refuses them without it).
let csrfToken = null;
const pageFetch = window.fetch.bind(window);
window.fetch = (url, options = {}) => {
  const method = (options.method || "GET").toUpperCase();
  if (csrfToken && method !== "GET" && method !== "HEAD") {
    options.headers = new Headers(options.headers || {});
    options.headers.set("X-CSRF-Token", csrfToken);
  }
  return pageFetch(url, options);
};

async function whoAmI() {
  const r = await pageFetch("/api/me");
  if (r.status === 401) {
    csrfToken = null;
    $("#login").hidden = false;
    $("#who").textContent = "";
    $("#logout").hidden = true;
    $("#login-user").focus();
    return;
  }
  if (!r.ok) return;
  const me = await r.json();
  csrfToken = me.csrf_token;
  $("#login").hidden = true;
  $("#who").textContent = me.user ? `${me.user} (${me.role})` : "";
  $("#logout").hidden = me.credential !== "session";
  // Admins manage accounts here; with no accounts at all (anonymous loopback) there is
  // no one to manage and the first admin comes from `lore user add`.
  $("#tab-admin").hidden = !(me.user && me.role === "admin");
}

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await pageFetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: $("#login-user").value, password: $("#login-password").value }),
  });
  $("#login-password").value = "";
  if (!r.ok) {
    $("#login-error").textContent = await apiError(r);
    return;
  }
  $("#login-error").textContent = "";
  await whoAmI();
});

$("#logout").addEventListener("click", async () => {
  await fetch("/api/logout", { method: "POST" });
  await whoAmI();
});

// ------------------------------------------------------------------ tabs
function show(view) {
  for (const name of ["ask", "library", "admin"]) {
    const on = name === view;
    $(`#view-${name}`).hidden = !on;
    $(`#tab-${name}`).setAttribute("aria-selected", String(on));
  }
  if (view === "library") loadDocuments();
  else if (view === "admin") loadAdmin();
  else $("#question").focus();
}
$("#tab-ask").addEventListener("click", () => show("ask"));
$("#tab-library").addEventListener("click", () => show("library"));
$("#tab-admin").addEventListener("click", () => show("admin"));

async function apiError(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function refreshReady() {
  try {
    const r = await fetch("/readyz");
    if (!r.ok) throw new Error(await apiError(r));
    const s = await r.json();
    $("#ready").textContent = `${s.documents} documents · ${s.chunks} passages · ${s.llm_model}`;
  } catch (e) {
    $("#ready").textContent = `not ready: ${e.message}`;
  }
}

// ------------------------------------------------------------------- ask
let history = [];
let controller = null;

function pageLabel(p) {
  if (p.page == null) return "";
  return p.page_end && p.page_end !== p.page ? `pages ${p.page}–${p.page_end}` : `page ${p.page}`;
}

function rawLink(p) {
  const url = `/api/documents/${encodeURIComponent(p.doc_id)}/raw`;
  return p.page != null ? `${url}#page=${p.page}` : url;
}

// Words of the answer sentence that cites a passage, highlighted in that passage.
function highlighted(text, sentence) {
  const words = new Set((sentence.toLowerCase().match(/[\p{L}\p{N}_-]{4,}/gu) || []));
  const frag = document.createDocumentFragment();
  for (const part of text.split(/([\p{L}\p{N}_-]+)/u)) {
    if (words.has(part.toLowerCase())) frag.append(el("mark", {}, part));
    else frag.append(part);
  }
  return frag;
}

// The quoted sentence, marked where it stands in the passage (verbatim, so found as is).
function quoted(text, quote) {
  const at = text.indexOf(quote);
  if (at < 0) return highlighted(text, quote);
  const frag = document.createDocumentFragment();
  frag.append(text.slice(0, at), el("mark", { class: "quote" }, quote), text.slice(at + quote.length));
  return frag;
}

function openPassage(p, sentence, quote) {
  $("#passage-title").textContent = p.title || p.doc;
  $("#passage-meta").textContent = [p.doc, pageLabel(p), p.heading].filter(Boolean).join(" · ");
  $("#passage-text").replaceChildren(quote ? quoted(p.text, quote) : highlighted(p.text, sentence || ""));
  $("#passage-open").href = rawLink(p);
  $("#passage-dialog").showModal();
}

// The answer text with each [n] turned into a button that opens passage n.
function renderAnswer(target, text, sources) {
  target.replaceChildren();
  const byNumber = new Map(sources.map((s) => [s.n, s]));
  const sentences = text.split(/(?<=[.!?])\s+/);
  for (const sentence of sentences) {
    for (const part of sentence.split(/(\[\d+\])/)) {
      const m = part.match(/^\[(\d+)\]$/);
      const source = m && byNumber.get(Number(m[1]));
      if (source) {
        target.append(el("button", {
          class: "cite", type: "button",
          "aria-label": `Open source ${m[1]}: ${source.doc}`,
          onclick: () => openPassage(source, sentence),
        }, part));
      } else {
        target.append(part);
      }
    }
    target.append(" ");
  }
}

function sourceItem(s, sentence) {
  return el("li", {},
    el("button", { class: "cite", type: "button", onclick: () => openPassage(s, sentence) }, `[${s.n}]`),
    ` ${s.title || s.doc}`,
    el("span", { class: "muted" }, ` — ${[s.doc, pageLabel(s), s.heading && `§ ${s.heading}`].filter(Boolean).join(", ")}`));
}

// Parses a text/event-stream body: yields {event, data} objects.
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).replace(/^ /, "");
      }
      if (data) yield { event, data: JSON.parse(data) };
    }
  }
}

// A finished answer in `answer` (its element) and what goes under it in `turn`.
function showAnswer(turn, answer, data) {
  answer.removeAttribute("aria-busy");
  if (data.abstained) answer.classList.add("notfound");
  renderAnswer(answer, data.answer, data.sources);
  if (data.abstention === "ungrounded") {
    // The draft streamed before the check: say why it was withdrawn.
    const why = data.unsupported
      ? `no retrieved passage holds ${data.unsupported.join(", ")}`
      : "it only restated the question";
    turn.append(el("p", { class: "muted" }, `A drafted answer was withdrawn: ${why}.`));
  } else if (data.abstention === "instructed") {
    // A document told the assistant what to say; the draft did, so it does not stand.
    turn.append(el("p", { class: "muted" },
      "A drafted answer was withdrawn: it followed an instruction written in a document."));
  }
  const quoteSource = data.quote && data.sources.find((s) => s.n === data.quote.n);
  if (quoteSource) {
    // The sentence the answer rests on, verbatim; it opens highlighted in its passage.
    turn.append(el("figure", { class: "quote" },
      el("blockquote", {}, data.quote.text),
      el("figcaption", { class: "muted" },
        el("button", { class: "cite", type: "button", "aria-label": `Open the quoted passage: ${quoteSource.doc}`,
          onclick: () => openPassage(quoteSource, "", data.quote.text) }, `[${data.quote.n}]`),
        ` ${[quoteSource.doc, pageLabel(quoteSource)].filter(Boolean).join(", ")}`)));
  }
  if (data.citations.length) {
    turn.append(el("ol", { class: "sources", "aria-label": "Sources" },
      ...data.citations.map((s) => sourceItem(s, ""))));
  }
  if (data.sources.length) {
    turn.append(el("details", { class: "passages" },
      el("summary", {}, `Retrieved passages (${data.sources.length})`),
      el("ol", {}, ...data.sources.map((s) => sourceItem(s, data.answer)))));
  }
}

// The "Ask the larger model" action under a local answer, offered only when the server
// says this answer may be escalated. Nothing is sent before the user confirms, for this
// question only; the answer comes back whole, with the masked values mapped back.
function offerEscalation(turn, question, pastTurns, offer) {
  if (!offer.available) {
    turn.append(el("p", { class: "muted escalation" }, `Larger model not available for this answer: ${offer.reason}`));
    return;
  }
  const status = el("span", { class: "muted", role: "status" });
  const button = el("button", { type: "button", class: "escalate" }, "Ask the larger model (anonymised)");
  const box = el("div", { class: "escalation" }, button, status);
  button.addEventListener("click", async () => {
    const confirmed = window.confirm(
      "Send this question and its retrieved passages to the larger model?\n\n" +
      "E-mail addresses, phone numbers, IBANs, card numbers, IP addresses and the names your " +
      "administrator listed are replaced by placeholders first; the rest of the text is sent " +
      "as it is. The request is recorded in the audit log.");
    if (!confirmed) return;
    button.disabled = true;
    status.textContent = " Asking the larger model…";
    try {
      const r = await fetch("/api/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ question, history: pastTurns, escalate: true, stream: false }),
      });
      if (!r.ok) throw new Error(await apiError(r));
      const data = await r.json();
      const masked = Object.entries(data.escalated ? data.escalated.masked : {})
        .map(([kind, n]) => `${n} ${kind}`).join(", ");
      const answer = el("div", { class: "a escalated" });
      box.replaceWith(el("p", { class: "muted" },
        `Answered by the larger model${data.escalated ? ` (${data.escalated.model})` : ""}; ` +
        (masked ? `masked before sending: ${masked}.` : "nothing needed masking.")), answer);
      showAnswer(turn, answer, data);
    } catch (e) {
      status.textContent = ` Error: ${e.message}`;
      button.disabled = false;
    }
  });
  turn.append(box);
}

async function ask(question) {
  const turn = el("div", { class: "turn" }, el("div", { class: "q" }, question));
  const answer = el("div", { class: "a", "aria-busy": "true" }, el("span", { class: "muted" }, "Searching…"));
  turn.append(answer);
  $("#conversation").append(turn);
  turn.scrollIntoView({ block: "end" });
  controller = new AbortController();
  $("#stop-button").hidden = false;
  $("#ask-button").disabled = true;
  let text = "";
  // The turns this question was asked with: an escalation of it sends the same ones.
  const pastTurns = history.slice();
  try {
    const response = await fetch("/api/ask", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question, history: pastTurns }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await apiError(response));
    for await (const { event, data } of sseEvents(response)) {
      if (event === "retrieved") {
        answer.replaceChildren(el("span", { class: "muted" }, `Reading ${data.passages.length} passages…`));
      } else if (event === "token") {
        if (!text) answer.replaceChildren();
        text += data.text;
        answer.textContent = text;
      } else if (event === "answer") {
        showAnswer(turn, answer, data);
        if (data.escalation) offerEscalation(turn, question, pastTurns, data.escalation);
        history.push({ role: "user", content: question }, { role: "assistant", content: data.answer });
        history = history.slice(-8);
      } else if (event === "error") {
        throw new Error(data.error.message);
      }
    }
  } catch (e) {
    answer.removeAttribute("aria-busy");
    answer.classList.add("error");
    answer.textContent = e.name === "AbortError" ? (text + " [stopped]") : `Error: ${e.message}`;
  } finally {
    controller = null;
    $("#stop-button").hidden = true;
    $("#ask-button").disabled = false;
    turn.scrollIntoView({ block: "end" });
  }
}

$("#ask-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const question = $("#question").value.trim();
  if (!question || controller) return;
  $("#question").value = "";
  ask(question);
});
$("#question").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("#ask-form").requestSubmit();
  }
});
$("#stop-button").addEventListener("click", () => controller && controller.abort());
$("#new-button").addEventListener("click", () => {
  history = [];
  $("#conversation").replaceChildren();
  $("#question").focus();
});

// --------------------------------------------------------------- library
async function loadDocuments() {
  const body = $("#documents tbody");
  try {
    const r = await fetch("/api/documents");
    if (!r.ok) throw new Error(await apiError(r));
    const { documents } = await r.json();
    body.replaceChildren(...documents.map((d) => el("tr", {},
      el("td", {}, el("a", { href: `/api/documents/${encodeURIComponent(d.id)}/raw`, target: "_blank", rel: "noopener" }, d.title || d.path),
        el("div", { class: "muted" }, d.path)),
      el("td", {}, d.collection),
      el("td", {}, d.pages == null ? "–" : String(d.pages)),
      el("td", {}, String(d.chunks)),
      el("td", {}, documentStatus(d)),
      el("td", {}, el("button", { type: "button", class: "secondary", "aria-label": `Delete ${d.path}`,
        onclick: () => removeDocument(d) }, "Delete")))));
    if (!documents.length) body.append(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "No documents yet: drop some above.")));
  } catch (e) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "6", class: "warn" }, `Cannot list documents: ${e.message}`)));
  }
  refreshReady();
  refreshWatch();
}

// Watched folders (lore serve --watch): queue and progress, refreshed while work is queued.
let watchTimer = null;
async function refreshWatch() {
  clearTimeout(watchTimer);
  const line = $("#watch-status");
  try {
    const r = await fetch("/api/watch");
    if (!r.ok) throw new Error(await apiError(r));
    const { watching, status: w } = await r.json();
    line.hidden = !watching;
    if (!watching) return;
    const busy = w.queue > 0 || w.state === "syncing" || w.state === "scanning";
    const failed = w.failed ? ` · ${w.failed} failed` : "";
    const gone = w.unavailable.length ? ` · ⚠ empty or unreadable, documents kept: ${w.unavailable.join(", ")}` : "";
    line.textContent = `Watching ${w.roots.join(", ")}: ${busy ? `${w.queue} files queued, ${w.files_per_sec.toFixed(1)} files/s` : "in step"}` +
      ` · ${w.files_done} files handled${failed}${gone}`;
    if (busy && !$("#view-library").hidden) watchTimer = setTimeout(loadDocuments, 2000);
  } catch (e) {
    line.hidden = false;
    line.textContent = `Watch status unavailable: ${e.message}`;
  }
}

// "failed" shows the reason in full: the person who dropped the file has to fix it.
function documentStatus(d) {
  if (d.status === "failed") {
    const cell = el("div", {}, el("span", { class: "warn" }, d.chunks ? "failed (older version indexed)" : "failed"));
    cell.append(el("div", { class: "muted error-reason" }, d.last_error || ""));
    return cell;
  }
  if (d.warnings.length) return el("span", { class: "warn", title: d.warnings.join("\n") }, "indexed with warnings");
  return "indexed";
}

async function removeDocument(d) {
  if (!confirm(`Delete ${d.path} from the index?`)) return;
  const r = await fetch(`/api/documents/${encodeURIComponent(d.id)}`, { method: "DELETE" });
  if (!r.ok) alert(`Cannot delete: ${await apiError(r)}`);
  loadDocuments();
}

function upload(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  const item = el("li", {}, `Uploading ${files.length} file(s)… `);
  const bar = el("progress", { max: "100", value: "0", "aria-label": "Upload progress" });
  item.append(bar);
  $("#uploads").prepend(item);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/documents");
  if (csrfToken) xhr.setRequestHeader("X-CSRF-Token", csrfToken);
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
  xhr.onload = () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
    if (xhr.status !== 202) {
      item.textContent = `Upload failed: ${body.error ? body.error.message : xhr.statusText}`;
      return;
    }
    item.textContent = `Indexing ${body.files.join(", ")}…`;
    pollJob(body.job_id, item);
  };
  xhr.onerror = () => { item.textContent = "Upload failed: network error"; };
  xhr.send(form);
}

async function pollJob(id, item) {
  for (;;) {
    const r = await fetch(`/api/jobs/${encodeURIComponent(id)}`);
    if (!r.ok) { item.textContent = `Job ${id}: ${await apiError(r)}`; return; }
    const job = await r.json();
    if (job.state === "queued" || job.state === "running") {
      item.textContent = job.state === "queued"
        ? `Waiting to index ${job.files.join(", ")}…`
        : `Indexing ${job.files.join(", ")}: ${job.progress.files_done}/${job.progress.files_total} files, ${job.progress.chunks} passages…`;
      await new Promise((ok) => setTimeout(ok, 700));
      continue;
    }
    const s = job.summary;
    if (job.error) item.textContent = `Failed: ${job.error}`;
    else {
      const problems = [...s.failed, ...s.skipped].map((f) => `${f.path}: ${f.reason}`);
      item.textContent = `Done: ${s.ingested.length} indexed, ${s.unchanged.length} unchanged` +
        (problems.length ? ` — ${problems.join("; ")}` : "");
    }
    loadDocuments();
    return;
  }
}

const drop = $("#drop");
drop.addEventListener("click", () => $("#file-input").click());
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("#file-input").click(); } });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload([...e.dataTransfer.files]); });
$("#file-input").addEventListener("change", (e) => { upload([...e.target.files]); e.target.value = ""; });

$("#search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const query = $("#search").value.trim();
  const out = $("#search-results");
  if (!query) return;
  out.textContent = "Searching…";
  try {
    const r = await fetch("/api/search", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query, k: 10 }),
    });
    if (!r.ok) throw new Error(await apiError(r));
    const { results } = await r.json();
    out.replaceChildren(el("ol", {}, ...results.map((p, i) => sourceItem({ ...p, n: i + 1 }, query))));
    if (!results.length) out.textContent = "No passages found.";
  } catch (err) {
    out.textContent = `Search failed: ${err.message}`;
  }
});

refreshReady();
$("#question").focus();

whoAmI();

// ------------------------------------------------------------------ admin
// Users, grants and API tokens through /api/admin (admins only; the server checks).
const grantList = (text) => text.split(",").map((g) => g.trim()).filter((g) => g);
const when = (seconds) => (seconds == null ? "never" : new Date(seconds * 1000).toLocaleDateString());

async function adminCall(url, method, body) {
  const options = { method };
  if (body !== undefined) {
    options.headers = { "Content-Type": "application/json" };
    options.body = JSON.stringify(body);
  }
  const r = await fetch(url, options);
  if (!r.ok) throw new Error(await apiError(r));
  return r.status === 204 ? null : r.json();
}

// 20 characters from the browser's CSPRNG (about 119 bits); the user's sessions end.
function newPassword() {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  const unbiased = 256 - (256 % alphabet.length); // bytes at or above this are redrawn
  let out = "";
  while (out.length < 20) {
    for (const b of crypto.getRandomValues(new Uint8Array(32))) {
      if (b < unbiased && out.length < 20) out += alphabet[b % alphabet.length];
    }
  }
  return out;
}

// A secret (generated password or token) is shown once, here, and never again.
function showSecret(what, secret) {
  const box = $("#admin-secret");
  box.replaceChildren(`${what} (shown once, copy it now): `, el("code", {}, secret));
  box.hidden = false;
}

async function adminAction(action) {
  $("#admin-error").textContent = "";
  try {
    await action();
  } catch (e) {
    $("#admin-error").textContent = e.message;
  }
  await loadAdmin();
}

function userRow(u) {
  const name = encodeURIComponent(u.name);
  const role = el("select", { "aria-label": `Role of ${u.name}` });
  for (const r of ["reader", "editor", "admin"]) {
    const option = el("option", {}, r);
    option.selected = r === u.role;
    role.append(option);
  }
  role.addEventListener("change", () =>
    adminAction(() => adminCall(`/api/admin/users/${name}`, "PATCH", { role: role.value })));
  const grants = el("input", { "aria-label": `Collections of ${u.name}` });
  grants.value = u.grants.join(", ");
  const save = el("button", { type: "button", class: "secondary",
    onclick: () => adminAction(() =>
      adminCall(`/api/admin/users/${name}/grants`, "PUT", { collections: grantList(grants.value) })) }, "Save");
  const remove = el("button", { type: "button", class: "secondary",
    onclick: () => {
      if (confirm(`Remove ${u.name} and their tokens?`)) {
        adminAction(() => adminCall(`/api/admin/users/${name}`, "DELETE"));
      }
    } }, "Remove");
  const reset = el("button", { type: "button", class: "secondary",
    onclick: () => adminAction(async () => {
      const password = newPassword();
      await adminCall(`/api/admin/users/${name}`, "PATCH", { password });
      showSecret(`New password for ${u.name}`, password);
    }) }, "New password");
  return el("tr", {}, el("td", {}, u.name), el("td", {}, role),
    el("td", {}, el("div", { class: "row" }, grants, save)), el("td", {}, el("div", { class: "row" }, reset, remove)));
}

function tokenRow(t) {
  const revoke = el("button", { type: "button", class: "secondary",
    onclick: () => adminAction(() => adminCall(`/api/admin/tokens/${encodeURIComponent(t.id)}`, "DELETE")) },
    "Revoke");
  return el("tr", {}, el("td", {}, el("code", {}, t.id)), el("td", {}, t.user), el("td", {}, t.label || ""),
    el("td", {}, t.state), el("td", {}, when(t.expires_at)), el("td", {}, t.state === "active" ? revoke : ""));
}

async function loadAdmin() {
  try {
    const [users, tokens] = await Promise.all([
      adminCall("/api/admin/users", "GET"),
      adminCall("/api/admin/tokens", "GET"),
    ]);
    $("#users tbody").replaceChildren(...users.users.map(userRow));
    $("#tokens tbody").replaceChildren(...tokens.tokens.map(tokenRow));
    const owner = $("#token-user");
    const chosen = owner.value;
    owner.replaceChildren(...users.users.map((u) => el("option", {}, u.name)));
    if (chosen) owner.value = chosen;
  } catch (e) {
    $("#admin-error").textContent = e.message;
  }
}

$("#user-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("#new-user").value.trim();
  adminAction(async () => {
    const created = await adminCall("/api/admin/users", "POST",
      { name, role: $("#new-role").value, grants: grantList($("#new-grants").value) });
    $("#new-user").value = "";
    $("#new-grants").value = "";
    if (created.password) showSecret(`Password for ${name}`, created.password);
  });
});

$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const days = $("#token-days").value;
  adminAction(async () => {
    const created = await adminCall("/api/admin/tokens", "POST", {
      user: $("#token-user").value,
      label: $("#token-label").value.trim() || null,
      expires_days: days ? Number(days) : null,
    });
    $("#token-label").value = "";
    showSecret(`Token for ${created.token.user}`, created.secret);
  });
});
