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

// One row of the conversation list: a button, so Tab and Enter reach it.
export function conversationRow(conversation, selected) {
  const preview = conversation.last_message;
  const unread = conversation.unread || 0;
  const text = preview ? (preview.direction === "out" ? "You: " : "") + preview.content : "";
  const button = el(
    "button",
    {
      type: "button",
      className: "row",
      "data-id": conversation.id,
      "aria-current": selected ? "true" : false,
    },
    el("span", { className: "row-top" },
      el("span", { className: "row-name", text: contactName(conversation.contact) }),
      el("time", { className: "row-time", datetime: conversation.last_message_at || "",
                   text: shortTime(conversation.last_message_at) })),
    el("span", { className: "row-bottom" },
      el("span", { className: "row-channel", text: conversation.channel.name }),
      el("span", { className: "row-preview", text })),
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

// One message of the thread; outbound ones carry their delivery status.
export function messageItem(message) {
  const outbound = message.direction === "out";
  const classes = ["message", outbound ? "outbound" : "inbound"];
  if (message.auto_reply) classes.push("auto");
  if (message.pending) classes.push("pending");
  const meta = el("span", { className: "meta" },
    el("time", { datetime: message.created_at, title: longTime(message.created_at),
                 text: shortTime(message.created_at) }));
  if (message.auto_reply) meta.append(el("span", { className: "auto-tag", text: "Auto-reply" }));
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
    el("p", { className: "text", text: message.content }), meta);
}
