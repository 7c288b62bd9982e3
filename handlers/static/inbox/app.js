// The inbox: the conversation list, the open thread and the reply box, kept live by
// the event stream. Every change the gateway makes arrives as an event; what this
// page did itself also comes back in the API's answer, and both are merged by id.

import { ApiError, Offline, Session, SignedOut } from "./session.js";
import { Stream } from "./stream.js";
import { renderAdmin } from "./admin.js";
import { Attention } from "./attention.js";
import { ContactPanel } from "./contact.js";
import { Picker } from "./picker.js";
import { contactName, conversationRow, el, messageItem, noteItem, size, unreadBy } from "./view.js";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 30;
const DEFAULT_LIMIT = 4096;

const TABS = {
  mine: { query: { assignee: "me", status: "open" },
          has: (c) => c.assignee_id === state.me?.id && c.status === "open" },
  unassigned: { query: { assignee: "none", status: "open" },
                has: (c) => c.assignee_id === null && c.status === "open" },
  // Waiting on the contact: out of Mine and Unassigned until they write again.
  pending: { query: { status: "pending" }, has: (c) => c.status === "pending" },
  bot: { query: { status: "bot" }, has: (c) => c.status === "bot" }, // its channel's bot answers
  all: { query: {}, has: () => true },
  resolved: { query: { status: "resolved" }, has: (c) => c.status === "resolved" },
};

const state = {
  me: null,
  agents: [],
  channels: new Map(), // id → channel, for its text limit
  tab: "mine",
  conversations: new Map(), // the current tab's, by id
  listCursor: null,
  listed: false, // the list was read since signing in
  open: null, // the open conversation
  messages: new Map(), // the open conversation's, by id
  view: null, // the open thread's paging: {id, cursor (null once it reaches the start), loading}
  drafts: new Map(), // conversation id → half-typed reply
  sendKey: null, // the Idempotency-Key of the reply being sent, until it is accepted
  file: null, // the File attached to the reply, sent with it
  sending: false,
  faqs: null, // the FAQs, read once a sign-in for the / picker
  label: "", // the list shows only conversations with this label ("": any)
  offline: false,
};

const attention = new Attention();
const contactPanel = new ContactPanel((method, path, body) => api(method, path, body), () => state.current);
const session = new Session(signedOut);
const stream = new Stream(session, {
  onEvent,
  onReset: () => guard(reload),
  onOnline: (resumed) => {
    setOffline(false);
    if (!resumed && state.listed) guard(reload); // it began after the list was read
  },
  onOffline: () => setOffline(true),
  onSignedOut: () => session.ended(),
});

// --- calls -------------------------------------------------------------------

async function api(method, path, body = null, headers = {}) {
  try {
    const { data } = await session.request(method, path, body, headers);
    if (state.offline && stream.connected) setOffline(false); // a call failed, then came back
    return data;
  } catch (error) {
    if (error instanceof Offline) setOffline(true);
    throw error;
  }
}

// Runs a user action; what went wrong is shown on the page, never thrown at the console.
async function guard(action, where = null) {
  try {
    return await action();
  } catch (error) {
    if (error instanceof SignedOut) return undefined; // the sign-in form is showing
    if (where) where.textContent = error instanceof Offline ? "The gateway cannot be reached." : error.message;
    return undefined;
  }
}

function cursorOf(next) {
  return next ? new URL(next, location.href).searchParams.get("cursor") : null;
}

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function newer(known, candidate) {
  return !known || Date.parse(candidate.updated_at) >= Date.parse(known.updated_at);
}

// --- signing in and out --------------------------------------------------------

function showSignIn(reason) {
  $("signin-reason").textContent = reason;
  $("signin-error").textContent = "";
  $("signin").hidden = false;
  $("app").hidden = true;
  $(state.me ? "password" : "username").focus();
}

function signedOut() {
  stream.stop();
  attention.reset();
  setOffline(false); // whatever the stream said while it found out
  showSignIn("Your sign-in has ended. Sign in again to go on; your reply is kept.");
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  const error = $("signin-error");
  error.textContent = "";
  guard(async () => {
    try {
      await session.signIn(username, password);
    } catch (failure) {
      error.textContent = failure instanceof ApiError && failure.status === 401
        ? "Wrong username or password."
        : failure.message;
      return;
    }
    $("password").value = "";
    const same = state.me && state.me.username === username.toLowerCase();
    await enter(!same);
  }, error);
});

$("signout").addEventListener("click", () => guard(async () => {
  stream.stop();
  await session.signOut();
  state.me = null;
  state.open = null;
  state.drafts.clear();
  $("reply-text").value = "";
  showSignIn("Signed out.");
}));

async function enter(fresh) {
  if (fresh) {
    state.open = null;
    state.drafts.clear();
    $("reply-text").value = "";
    showThread(false);
  }
  state.listed = false;
  state.faqs = null;
  state.me = await api("GET", "/api/v1/agents/me/");
  $("signin").hidden = true;
  $("app").hidden = false;
  $("me").textContent = state.me.display_name || state.me.username;
  $("available").checked = state.me.is_available;
  $("admin-open").hidden = state.me.role !== "admin";
  // The stream resumes after the last event seen, when there was one. The list is read
  // once it is subscribed (or, offline, after a while: the stream catches up later).
  const subscribed = stream.start();
  attention.reset();
  await Promise.all([loadAgents(), loadChannels(), loadMine(), loadLabels(), loadCounts()]);
  await Promise.race([subscribed, new Promise((resolve) => setTimeout(resolve, 3000))]);
  await loadList();
  if (state.open) await openConversation(state.open, false);
}

function agentNames() {
  return new Map(state.agents.map((a) => [a.id, a.display_name || a.username]));
}

// How many each tab holds, read again at most every half second while things change:
// a change while a read is due joins it (restarting the wait would put it off for as
// long as events keep coming).
let countsTimer = null;

function refreshCounts() {
  if (countsTimer !== null) return;
  countsTimer = setTimeout(() => {
    countsTimer = null;
    guard(loadCounts);
  }, 500);
}

async function loadCounts() {
  if (!state.me) return;
  const counts = await api("GET", "/api/v1/conversations/counts/");
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.dataset.name ||= tab.textContent;
    const count = counts[tab.dataset.tab];
    tab.textContent = count === undefined ? tab.dataset.name : `${tab.dataset.name} (${count})`;
  }
}

// My open conversations' unread counts, for the tab's title (the list shows one tab).
async function loadMine() {
  const page = await api("GET", "/api/v1/conversations/?assignee=me&status=open&page_size=100");
  for (const conversation of page.results) attention.seen(conversation, state.me.id, unreadBy);
}

$("notify").addEventListener("change", (event) => guard(async () => {
  event.target.checked = event.target.checked && await attention.enableNotifications();
}));
$("sound").addEventListener("change", (event) => attention.enableSound(event.target.checked));

async function loadAgents() {
  const page = await api("GET", "/api/v1/agents/?page_size=100");
  state.agents = page.results;
  renderTransfer();
}

async function loadChannels() {
  const page = await api("GET", "/api/v1/channels/?page_size=100");
  state.channels = new Map(page.results.map((c) => [c.id, c]));
  renderLeft();
}

$("available").addEventListener("change", (event) => guard(async () => {
  const wanted = event.target.checked;
  try {
    state.me = await api("PATCH", "/api/v1/agents/me/", { is_available: wanted });
  } finally {
    event.target.checked = state.me.is_available;
  }
}));

$("admin-open").addEventListener("click", () => guard(async () => {
  $("admin-error").textContent = "";
  $("admin").showModal();
  await renderAdmin(api);
}, $("admin-error")));

$("admin-close").addEventListener("click", () => $("admin").close());

// --- offline -------------------------------------------------------------------

function setOffline(offline) {
  state.offline = offline;
  const banner = $("banner");
  banner.textContent = offline ? "Offline: reconnecting…" : "";
  banner.hidden = !offline;
}

window.addEventListener("offline", () => setOffline(true));

// --- the conversation list -----------------------------------------------------

async function loadList(more = false) {
  const tab = state.tab;
  const query = new URLSearchParams({ page_size: PAGE_SIZE, ...TABS[tab].query });
  if (state.label) query.set("label", state.label);
  if (more && state.listCursor) query.set("cursor", state.listCursor);
  const page = await api("GET", `/api/v1/conversations/?${query}`);
  if (state.tab !== tab) return;
  if (!more) state.conversations.clear();
  for (const conversation of page.results) keep(conversation);
  state.listCursor = cursorOf(page.next);
  state.listed = true;
  renderList();
}

// `live`: it came from the event stream, so news in it is told (a list is not news).
function keep(conversation, live = false) {
  const news = attention.seen(conversation, state.me?.id, unreadBy);
  if (news && live) {
    const preview = conversation.last_message?.content || "";
    const looking = document.visibilityState === "visible" && conversation.id === state.open;
    attention.alert(contactName(conversation.contact), preview, looking);
  }
  const known = state.conversations.get(conversation.id);
  if (!newer(known, conversation)) return;
  const labelled = !state.label || (conversation.labels || []).includes(state.label);
  if (TABS[state.tab].has(conversation) && labelled) state.conversations.set(conversation.id, conversation);
  else state.conversations.delete(conversation.id);
}

function takeConversation(conversation, live = false) {
  keep(conversation, live);
  refreshCounts();
  if (conversation.id === state.open && newer(state.current, conversation)) {
    state.current = conversation;
    renderHead();
  }
  renderList();
}

function activity(c) {
  return Date.parse(c.last_message_at || c.created_at);
}

function renderList() {
  const list = $("conversations");
  const focused = document.activeElement?.closest?.("#conversations li")?.dataset.id;
  const sorted = [...state.conversations.values()].sort((a, b) => activity(b) - activity(a));
  list.replaceChildren(...sorted.map((c) => conversationRow(c, c.id === state.open, state.me?.id, agentNames())));
  if (focused) list.querySelector(`li[data-id="${CSS.escape(focused)}"] button`)?.focus();
  $("list-empty").hidden = sorted.length > 0;
  $("list-more").hidden = !state.listCursor;
}

for (const tab of document.querySelectorAll("[data-tab]")) {
  tab.addEventListener("click", () => {
    state.tab = tab.dataset.tab;
    for (const other of document.querySelectorAll("[data-tab]")) {
      other.setAttribute("aria-selected", String(other === tab));
    }
    state.listCursor = null;
    state.conversations.clear();
    renderList();
    guard(() => loadList());
  });
}

$("list-more").addEventListener("click", () => guard(() => loadList(true)));

$("conversations").addEventListener("click", (event) => {
  const row = event.target.closest("button.row");
  if (row) guard(() => openConversation(row.dataset.id));
});

// Arrow keys move through the list; Enter opens (the rows are buttons).
$("conversations").addEventListener("keydown", (event) => {
  const rows = [...$("conversations").querySelectorAll("button.row")];
  const at = rows.indexOf(document.activeElement);
  const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: rows.length - 1 }[event.key];
  if (to === undefined || rows.length === 0) return;
  event.preventDefault();
  rows[Math.max(0, Math.min(rows.length - 1, to))].focus();
});

// --- the open conversation -----------------------------------------------------

function showThread(shown) {
  $("thread").hidden = !shown;
  $("thread-none").hidden = shown;
  document.body.classList.toggle("reading", shown);
}

async function openConversation(id, fromList = true) {
  if (fromList && state.open !== id) {
    if (state.open) state.drafts.set(state.open, $("reply-text").value);
    forgetFile(); // a file chosen for one contact never goes to another
    $("reply-text").value = state.drafts.get(id) || "";
    state.sendKey = null;
  }
  state.open = id;
  state.view = { id, cursor: undefined, loading: false }; // the thread as this opening shows it
  state.messages.clear();
  $("messages").replaceChildren();
  $("reply-error").textContent = "";
  $("transfer-to").value = "";
  $("transfer").disabled = true;
  state.current = state.conversations.get(id) || (state.current?.id === id ? state.current : null);
  showThread(true);
  renderList();
  if (!state.current) {
    state.current = await api("GET", `/api/v1/conversations/${encodeURIComponent(id)}/`);
  }
  renderHead();
  await Promise.all([loadOlder(), loadNotes(state.view), contactPanel.load()]);
  await markRead();
}

$("back").addEventListener("click", () => {
  document.body.classList.remove("reading");
  $("conversations").querySelector("[aria-current] ")?.focus();
});

function renderHead() {
  const c = state.current;
  if (!c) return;
  $("thread-name").textContent = contactName(c.contact);
  const holder = state.agents.find((a) => a.id === c.assignee_id);
  const held = c.status === "bot" ? "the bot answers"
    : c.assignee_id === null ? "unassigned" : holder ? (holder.display_name || holder.username) : "another agent";
  const handedOff = c.handoff_reason ? ` · from the bot: ${c.handoff_reason}` : "";
  $("thread-channel").textContent = `${c.channel.name} · ${held} · ${c.status}${handedOff}`;
  $("resolve").textContent = c.status === "resolved" ? "Reopen" : "Resolve";
  $("pend").hidden = c.status !== "open";
  if (document.activeElement !== $("labels")) $("labels").value = (c.labels || []).join(", ");
  renderLeft();
}

// Labels: typed as a comma-separated list, saved on Enter or on leaving the field.
async function saveLabels() {
  const c = state.current;
  const typed = $("labels").value.split(",").map((l) => l.trim()).filter(Boolean);
  if (!c || typed.join(",") === (c.labels || []).join(",")) return;
  const id = encodeURIComponent(c.id);
  takeConversation(await api("PATCH", `/api/v1/conversations/${id}/`, { labels: typed }));
  $("labels").value = (state.current.labels || []).join(", ");
  await loadLabels();
}

$("labels-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guard(saveLabels, $("reply-error"));
});
$("labels").addEventListener("change", () => guard(saveLabels, $("reply-error")));

// The label filter's choices: the labels in use, with their open conversations.
async function loadLabels() {
  const { results } = await api("GET", "/api/v1/labels/");
  const chosen = state.label;
  $("label-filter").replaceChildren(el("option", { value: "", text: "Any" }),
    ...results.map((l) => el("option", { value: l.name, text: `${l.name} (${l.open} open)` })));
  $("label-filter").value = results.some((l) => l.name === chosen) ? chosen : "";
}

$("label-filter").addEventListener("change", (event) => {
  state.label = event.target.value;
  state.listCursor = null;
  state.conversations.clear();
  renderList();
  guard(() => loadList());
});

const QUEUE = "queue";

// The agent's choice stays until they transfer: news of the conversation does not reset it.
function renderTransfer() {
  const chosen = $("transfer-to").value;
  const options = [el("option", { value: "", text: "Transfer to…" }),
                   el("option", { value: QUEUE, text: "Unassigned (queue)" })];
  for (const agent of state.agents) {
    const name = agent.display_name || agent.username;
    options.push(el("option", { value: agent.id, text: agent.id === state.me?.id ? `${name} (you)` : name }));
  }
  $("transfer-to").replaceChildren(...options);
  $("transfer-to").value = chosen;
  $("transfer").disabled = !$("transfer-to").value;
}

$("transfer-to").addEventListener("change", () => {
  $("transfer").disabled = !$("transfer-to").value;
});

$("transfer").addEventListener("click", () => guard(async () => {
  const chosen = $("transfer-to").value;
  if (!chosen) return;
  const body = { assignee_id: chosen === QUEUE ? null : chosen };
  const id = state.open;
  takeConversation(await api("PATCH", `/api/v1/conversations/${encodeURIComponent(id)}/`, body));
  $("transfer-to").value = "";
  $("transfer").disabled = true;
}, $("reply-error")));

$("pend").addEventListener("click", () => guard(async () => {
  const id = state.open;
  takeConversation(await api("PATCH", `/api/v1/conversations/${encodeURIComponent(id)}/`, { status: "pending" }));
}, $("reply-error")));

$("resolve").addEventListener("click", () => guard(async () => {
  const status = state.current.status === "resolved" ? "open" : "resolved";
  const id = state.open;
  takeConversation(await api("PATCH", `/api/v1/conversations/${encodeURIComponent(id)}/`, { status }));
}, $("reply-error")));

function takeNote(note) {
  const me = state.me?.id;
  const looking = document.visibilityState === "visible" && note.conversation_id === state.open;
  if (note.mentions.includes(me) && note.agent.id !== me) {
    attention.alert(`${note.agent.username} mentioned you`, note.content, looking);
  }
  if (note.conversation_id === state.open) takeMessage(noteItem(note));
}

async function markRead() {
  const id = state.open;
  if (!id || document.visibilityState !== "visible") return;
  takeConversation(await api("POST", `/api/v1/conversations/${encodeURIComponent(id)}/read/`));
}

document.addEventListener("visibilitychange", () => guard(markRead));

// Older pages are read upward, a cursor page at a time, keeping the view in place.
async function loadOlder() {
  const view = state.view;
  if (!view || view.loading || view.cursor === null) return;
  view.loading = true;
  const box = $("messages");
  try {
    const query = new URLSearchParams({ conversation_id: view.id, page_size: PAGE_SIZE });
    if (view.cursor) query.set("cursor", view.cursor);
    const page = await api("GET", `/api/v1/messages/?${query}`);
    if (state.view !== view) return; // another conversation was opened meanwhile
    const first = view.cursor === undefined;
    const fromBottom = box.scrollHeight - box.scrollTop;
    for (const message of page.results) takeMessage(message, false);
    box.scrollTop = first ? box.scrollHeight : box.scrollHeight - fromBottom;
    view.cursor = cursorOf(page.next);
  } finally {
    view.loading = false;
  }
  // Until the thread fills its box, scrolling cannot ask for more: read on.
  if (state.view === view && view.cursor && box.scrollHeight <= box.clientHeight) await loadOlder();
}

// The thread's private notes (the newest hundred), among its messages by time.
async function loadNotes(view) {
  const page = await api("GET", `/api/v1/conversations/${encodeURIComponent(view.id)}/notes/?page_size=100`);
  if (state.view !== view) return;
  for (const note of page.results) takeMessage(noteItem(note), false);
}

$("messages").addEventListener("scroll", () => {
  if ($("messages").scrollTop < 80) guard(loadOlder);
});

function order(a, b) {
  return Date.parse(a.created_at) - Date.parse(b.created_at) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

// Puts a message in the thread, or updates it there; the newest news of it wins.
function takeMessage(message, follow = true) {
  const known = state.messages.get(message.id);
  if (!newer(known, message)) return;
  state.messages.set(message.id, message);
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const item = messageItem(message);
  const shown = box.querySelector(`li[data-id="${CSS.escape(message.id)}"]`);
  if (shown) {
    const images = shown.querySelectorAll("img.inline-image"); // keep what was fetched
    item.querySelectorAll("img.inline-image").forEach((image, n) => {
      if (images[n]?.src) image.src = images[n].src;
    });
    shown.replaceWith(item);
    showImages(item); // those news arrived before: still to fetch
    return;
  }
  const later = [...box.children].find((li) => {
    const other = state.messages.get(li.dataset.id);
    return other && order(message, other) < 0;
  });
  box.insertBefore(item, later || box.querySelector(".pending"));
  showImages(item);
  if (follow && atBottom) box.scrollTop = box.scrollHeight;
}

function mediaPath(node) {
  const message = encodeURIComponent(node.dataset.message);
  return `/api/v1/messages/${message}/media/${encodeURIComponent(node.dataset.media)}/`;
}

// Images come through the API with the agent's token, then show from a blob: URL.
function showImages(item) {
  for (const image of item.querySelectorAll("img.inline-image:not([src])")) {
    guard(async () => {
      image.src = URL.createObjectURL(await session.blob(mediaPath(image)));
    });
  }
}

$("messages").addEventListener("click", (event) => {
  const button = event.target.closest("button.download");
  if (!button) return;
  guard(async () => {
    const link = el("a", { href: URL.createObjectURL(await session.blob(mediaPath(button))),
                           download: button.dataset.name });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  }, $("reply-error"));
});

function onEvent(type, event) {
  if (type === "conversation.updated") return takeConversation(event.conversation, true);
  if (type === "note.created") return takeNote(event.note);
  const message = event.message;
  const listed = state.conversations.get(message.conversation_id);
  if (listed && type === "message.created") {
    listed.last_message = { id: message.id, direction: message.direction,
                            content: message.content.slice(0, 200), status: message.status,
                            agent_id: message.agent?.id ?? null, auto_reply: message.auto_reply };
    listed.last_message_at = message.created_at;
    renderList();
  }
  if (message.conversation_id !== state.open) return undefined;
  takeMessage(message);
  if (type === "message.created" && message.direction === "in") guard(markRead);
  return undefined;
}

async function reload() {
  await loadList();
  if (state.open) await openConversation(state.open, false);
}

// --- replying ------------------------------------------------------------------

function limit() {
  return state.channels.get(state.current?.channel.id)?.max_text_length || DEFAULT_LIMIT;
}

function renderLeft() {
  const length = [...$("reply-text").value].length;
  const left = limit() - length;
  $("reply-left").textContent = left >= 0 ? `${left} characters left` : `${-left} characters too many`;
  $("reply-left").classList.toggle("error", left < 0);
  $("send").disabled = state.sending || left < 0 || !($("reply-text").value.trim() || state.file);
  const files = !$("note-mode").checked && state.channels.get(state.current?.channel.id)?.files;
  $("attach").disabled = !files;
  $("attach").title = files ? "Send a file with this reply" : "This channel sends no files";
  $("attached").hidden = !state.file;
  $("attached-name").textContent = state.file ? `${state.file.name}${size(state.file.size)}` : "";
}

// A file goes with the reply as its caption; the gateway checks the channel's limits.
$("attach").addEventListener("click", () => $("attach-file").click());
$("attach-file").addEventListener("change", (event) => {
  state.file = event.target.files[0] || null;
  state.sendKey = null; // another file is another message
  $("reply-error").textContent = "";
  renderLeft();
});
$("detach").addEventListener("click", () => {
  forgetFile();
  $("attach").focus();
  renderLeft();
});

function forgetFile() {
  state.file = null;
  state.sendKey = null;
  $("attach-file").value = "";
}

$("reply-text").addEventListener("input", () => {
  state.sendKey = null; // a changed reply is a new message
  $("reply-error").textContent = "";
  renderLeft();
});

// Before the box's own keys: while the picker is open, Enter chooses.
const picker = new Picker($("reply-text"), $("picker"), {
  find: findSnippets,
  values: () => ({
    "contact.name": state.current ? contactName(state.current.contact) : "",
    "contact.external_id": state.current?.contact.external_id || "",
    "agent.name": state.me?.display_name || state.me?.username || "",
    "channel.name": state.current?.channel.name || "",
  }),
});

// Saved replies whose shortcut starts with `prefix`, then FAQ answers with a word of
// their question that does.
async function findSnippets(prefix) {
  const query = new URLSearchParams({ page_size: 10, prefix });
  const [replies, faqs] = await Promise.all([
    api("GET", `/api/v1/replies/?${query}`),
    state.faqs || api("GET", "/api/v1/faqs/?page_size=100").then((page) => (state.faqs = page)),
  ]);
  const saved = replies.results.map((r) => ({ label: `/${r.shortcut}`, text: r.text }));
  const words = (text) => text.toLowerCase().split(/[^\p{L}\p{N}]+/u);
  const answers = faqs.results
    .filter((f) => f.enabled && (!prefix || words(f.question).some((w) => w.startsWith(prefix))))
    .slice(0, 5)
    .map((f) => ({ label: `FAQ: ${f.question}`, text: f.answer }));
  return [...saved, ...answers];
}

$("reply-text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("reply").requestSubmit();
  }
});

$("reply").addEventListener("submit", (event) => {
  event.preventDefault();
  guard(send, $("reply-error"));
});

// One reply, once: a double click finds it in flight, and a retry after a network
// error reuses its Idempotency-Key, so the gateway sends it a single time.
async function send() {
  const box = $("reply-text");
  const content = box.value;
  const conversation = state.current;
  const file = state.file;
  if (state.sending || !conversation || !(content.trim() || file) || [...content].length > limit()) return;
  if ($("note-mode").checked) return writeNote(conversation, content);
  state.sending = true;
  state.sendKey ||= newKey();
  renderLeft();
  const shown = content || `[${file.name}]`;
  const placeholder = messageItem({ id: `pending-${state.sendKey}`, direction: "out", content: shown,
                                    status: "queued", created_at: new Date().toISOString(), pending: true });
  $("messages").append(placeholder);
  $("messages").scrollTop = $("messages").scrollHeight;
  let body = { contact_id: conversation.contact.id, content };
  if (file) {
    body = new FormData();
    body.append("contact_id", conversation.contact.id);
    if (content.trim()) body.append("content", content);
    body.append("file", file, file.name);
  }
  try {
    const message = await api("POST", "/api/v1/messages/", body, { "Idempotency-Key": state.sendKey });
    state.sendKey = null;
    if (file && state.file === file) forgetFile();
    if (box.value === content) box.value = "";
    state.drafts.delete(conversation.id);
    if (state.open === message.conversation_id) takeMessage(message);
  } finally {
    placeholder.remove();
    state.sending = false;
    renderLeft();
  }
}

// A private note: for the agents only, so no file, no provider, no Idempotency-Key
// (a note written twice is two notes, and says so).
async function writeNote(conversation, content) {
  if (!content.trim()) return;
  state.sending = true;
  renderLeft();
  try {
    const id = encodeURIComponent(conversation.id);
    const note = await api("POST", `/api/v1/conversations/${id}/notes/`, { content });
    if ($("reply-text").value === content) $("reply-text").value = "";
    state.drafts.delete(conversation.id);
    if (state.open === note.conversation_id) takeMessage(noteItem(note));
  } finally {
    state.sending = false;
    renderLeft();
  }
}

$("note-mode").addEventListener("change", (event) => {
  document.getElementById("reply").classList.toggle("noting", event.target.checked);
  if (event.target.checked) forgetFile();
  renderLeft();
});

// --- start ---------------------------------------------------------------------

if (session.signedIn) guard(() => enter(true), $("signin-error"));
else showSignIn("");
