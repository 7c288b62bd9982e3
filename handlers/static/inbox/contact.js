// The contact panel: who the open conversation's contact is (channel, provider id,
// first and last seen, the reply window) and the attributes the team keeps on them.

import { el, longTime } from "./view.js";

const $ = (id) => document.getElementById(id);

export class ContactPanel {
  // `api(method, path, body)` is the page's; `conversation()` the open one.
  constructor(api, conversation) {
    this.api = api;
    this.conversation = conversation;
    this.contact = null;
    $("contact-open").addEventListener("click", () => this.toggle());
    $("attribute-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const name = $("attribute-name").value.trim().toLowerCase();
      const value = $("attribute-value").value.trim();
      if (name && value) this.change({ [name]: value }, () => {
        $("attribute-name").value = "";
        $("attribute-value").value = "";
        $("attribute-name").focus();
      });
    });
  }

  get shown() {
    return !$("contact-panel").hidden;
  }

  toggle() {
    const show = !this.shown;
    $("contact-panel").hidden = !show;
    $("contact-open").setAttribute("aria-expanded", String(show));
    if (show) this.load();
  }

  // Another conversation was opened: the panel, if shown, follows it.
  async load() {
    const conversation = this.conversation();
    if (!this.shown || !conversation) return;
    $("contact-error").textContent = "";
    try {
      const contact = await this.api("GET", `/api/v1/contacts/${encodeURIComponent(conversation.contact.id)}/`);
      if (this.conversation()?.contact.id === contact.id) this.render(contact, conversation);
    } catch (error) {
      $("contact-error").textContent = error.message;
    }
  }

  async change(attributes, done = () => {}) {
    $("contact-error").textContent = "";
    try {
      const contact = await this.api("PATCH", `/api/v1/contacts/${encodeURIComponent(this.contact.id)}/`,
                                     { attributes });
      this.render(contact, this.conversation());
      done();
    } catch (error) {
      $("contact-error").textContent = error.message;
    }
  }

  render(contact, conversation) {
    this.contact = contact;
    const facts = [
      ["Channel", `${conversation.channel.name} (${conversation.channel.type})`],
      ["Provider id", contact.external_id],
      ["Username", contact.username || "—"],
      ["First seen", longTime(contact.created_at)],
      ["Last message", longTime(contact.last_message_at) || "—"],
    ];
    if (contact.window_expires_at) facts.push(["Reply window closes", longTime(contact.window_expires_at)]);
    $("contact-facts").replaceChildren(...facts.flatMap(([term, detail]) =>
      [el("dt", { text: term }), el("dd", { dir: "auto", text: detail })]));
    const rows = Object.entries(contact.attributes).map(([name, value]) =>
      el("li", {},
        el("span", { className: "attribute-name", text: name }),
        el("span", { dir: "auto", text: value }),
        el("button", { type: "button", text: "Remove", "aria-label": `Remove ${name}`,
                       "data-name": name })));
    $("contact-attributes").replaceChildren(...rows);
    for (const button of $("contact-attributes").querySelectorAll("button")) {
      button.addEventListener("click", () => this.change({ [button.dataset.name]: null }));
    }
  }
}
