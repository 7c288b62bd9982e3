// Building the page's pieces. Every piece of text a contact supplied goes in through
// textContent, never as markup: a name like <img src=x onerror=...> shows as written.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const day = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function shortTime(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  return when.toDateString() === new Date().toDateString() ? clock.format(when) : day.format(when);
}

export function longTime(iso) {
  return iso ? full.format(new Date(iso)) : "";
}

export function contactName(contact) {
  return contact.name || contact.external_id;
}

// What `me` has not read: each agent's own (an event's `unread` is the assignee's).
export function unreadBy(conversation, me) {
  const mark = (conversation.read_by || {})[me] || 0;
  return Math.max(0, (conversation.inbound_count || 0) - mark);
}

// Who sent the preview's message, as its row says it.
function sender(preview, me, names) {
  if (preview.direction !== "out") return "";
  if (preview.auto_reply) return "Auto-reply: ";
  if (preview.agent_id === me) return "You: ";
  return preview.agent_id ? `${names.get(preview.agent_id) || "Agent"}: ` : "";
}

// Who holds a conversation, unless it is `me`: shown in the lists other than Mine.
function holder(conversation, me, names) {
  if (conversation.status === "bot") return "Bot";
  if (conversation.assignee_id === me) return "";
  return conversation.assignee_id ? names.get(conversation.assignee_id) || "An agent" : "Queue";
}

// One row of the conversation list: a button, so Tab and Enter reach it. Text a
// contact or an agent wrote runs in its own direction (dir=auto: Arabic, Hebrew).
export function conversationRow(conversation, selected, me, names = new Map()) {
  const preview = conversation.last_message;
  const unread = unreadBy(conversation, me);
  const from = preview ? sender(preview, me, names) : "";
  const held = holder(conversation, me, names);
  const button = el(
    "button",
    {
      type: "button",
      className: "row",
      "data-id": conversation.id,
      "aria-current": selected ? "true" : false,
    },
    el("span", { className: "row-top" },
      el("span", { className: "row-name", dir: "auto", text: contactName(conversation.contact) }),
      el("time", { className: "row-time", datetime: conversation.last_message_at || "",
                   text: shortTime(conversation.last_message_at) })),
    el("span", { className: "row-bottom" },
      el("span", { className: "row-channel", text: conversation.channel.name }),
      held ? el("span", { className: "row-holder", text: held }) : null,
      el("span", { className: "row-preview" }, from,
         el("bdi", { dir: "auto", text: preview ? preview.content : "" }))),
    (conversation.labels || []).length
      ? el("span", { className: "row-labels", dir: "auto", text: conversation.labels.join(" · ") })
      : null,
    unread > 0
      ? el("span", { className: "badge", text: String(unread), "aria-label": `${unread} unread` })
      : null,
  );
  return el("li", { "data-id": conversation.id }, button);
}

const STATUS_TEXT = {
  queued: "Queued",
  sending: "Sending",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  failed: "Failed",
};

// A private note as the thread shows it: among the messages, by its time.
export function noteItem(note) {
  return { id: note.id, direction: "note", content: note.content, agent: note.agent,
           created_at: note.created_at, updated_at: note.created_at, media: [] };
}

// One message of the thread; outbound ones carry their delivery status.
export function messageItem(message) {
  const outbound = message.direction === "out";
  const note = message.direction === "note";
  const classes = ["message", note ? "note" : outbound ? "outbound" : "inbound"];
  if (message.auto_reply) classes.push("auto");
  if (message.pending) classes.push("pending");
  const meta = el("span", { className: "meta" },
    el("time", { datetime: message.created_at, title: longTime(message.created_at),
                 text: shortTime(message.created_at) }));
  if (note) meta.append(el("span", { className: "auto-tag", text: "Private note" }));
  if (message.auto_reply) meta.append(el("span", { className: "auto-tag", text: "Auto-reply" }));
  if (message.agent?.kind === "bot") meta.append(el("span", { className: "auto-tag", text: "Bot" }));
  else if (message.agent) meta.prepend(el("span", { className: "sender", text: message.agent.username }));
  if (outbound) {
    const status = el("span", {
      className: `status status-${message.status}`,
      "data-status": message.status,
      text: STATUS_TEXT[message.status] || message.status,
    });
    if (message.error) {
      status.title = message.error; // the provider's reason, on hover
      status.setAttribute("aria-label", `Failed: ${message.error}`);
    }
    meta.append(status);
  }
  return el("li", { className: classes.join(" "), "data-id": message.id },
    (message.media || []).length ? mediaList(message) : null,
    el("p", { className: "text", dir: "auto", text: message.content }), meta);
}

export function size(bytes) {
  if (bytes === null || bytes === undefined) return "";
  return bytes < 1024 * 1024 ? ` (${Math.ceil(bytes / 1024)} KB)` : ` (${(bytes / 1048576).toFixed(1)} MB)`;
}

const FILES = new Set(["photo", "image", "document", "voice", "audio", "video", "video_note",
                       "sticker", "animation"]);

// What a message carried: an image slot the page fills from the API (an <img> cannot
// send the Authorization header), or a button that downloads the file.
function mediaList(message) {
  const list = el("ul", { className: "media" });
  for (const item of message.media) {
    const at = { "data-message": message.id, "data-media": item.id };
    if (item.kind === "location") {
      list.append(el("li", { text: `Location ${item.latitude}, ${item.longitude}` }));
    } else if (item.kind === "contact") {
      list.append(el("li", { text: `Contact ${item.file_name || ""} ${item.phone_number || ""}`.trim() }));
    } else if (FILES.has(item.kind) && (item.mime_type || "").startsWith("image/")) {
      list.append(el("li", {}, el("img", { ...at, className: "inline-image", alt: item.caption || item.kind })));
    } else if (FILES.has(item.kind)) {
      const name = item.file_name || item.kind.replace("_", " ");
      list.append(el("li", {}, el("button", { ...at, type: "button", className: "download",
                                              "data-name": name, text: `Download ${name}${size(item.size)}` })));
    }
  }
  return list;
}
