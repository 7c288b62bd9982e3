// The / picker: typing / and the start of a shortcut in the reply box offers the
// team's saved replies and the FAQ answers; choosing one puts its text, with its
// {{fields}} filled for the open conversation, in the box. Nothing is sent until
// the agent sends it.

import { el } from "./view.js";

const TYPED = /^\/([a-z0-9_-]*)$/i;

// A saved reply's text with the conversation's values in its {{fields}}.
export function fill(text, values) {
  return text.replace(/\{\{\s*([^{}]*?)\s*\}\}/g, (whole, name) => (name in values ? values[name] : whole));
}

export class Picker {
  // `find(prefix)` resolves to [{label, text}]; `values()` gives the fields' values.
  constructor(box, list, { find, values }) {
    Object.assign(this, { box, list, find, values, options: [], at: 0, asked: 0 });
    box.setAttribute("aria-controls", list.id);
    box.setAttribute("aria-expanded", "false");
    box.addEventListener("input", () => this.typed());
    box.addEventListener("keydown", (event) => this.key(event));
    list.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus
    list.addEventListener("click", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) this.choose(Number(option.dataset.index));
    });
  }

  get open() {
    return !this.list.hidden;
  }

  async typed() {
    const match = TYPED.exec(this.box.value);
    if (!match) return this.close();
    const asked = ++this.asked; // an older answer arriving late is dropped
    const options = await this.find(match[1].toLowerCase());
    if (asked !== this.asked || !TYPED.test(this.box.value)) return undefined;
    this.options = options;
    this.at = 0;
    return options.length ? this.render() : this.close();
  }

  render() {
    this.list.replaceChildren(...this.options.map((option, index) =>
      el("li", { role: "option", id: `picker-${index}`, "data-index": index,
                 "aria-selected": String(index === this.at) },
        el("span", { className: "picker-label", text: option.label }),
        el("span", { className: "picker-text", dir: "auto", text: option.text }))));
    this.list.hidden = false;
    this.box.setAttribute("aria-expanded", "true");
    this.box.setAttribute("aria-activedescendant", `picker-${this.at}`);
  }

  close() {
    this.list.hidden = true;
    this.options = [];
    this.box.setAttribute("aria-expanded", "false");
    this.box.removeAttribute("aria-activedescendant");
  }

  // Runs before the box's other keys (Enter sends): while open, these are the picker's.
  key(event) {
    if (!this.open) return;
    const moves = { ArrowDown: 1, ArrowUp: -1 };
    if (event.key in moves) {
      this.at = (this.at + moves[event.key] + this.options.length) % this.options.length;
      this.render();
    } else if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") {
      this.choose(this.at);
    } else if (event.key === "Escape") {
      this.close();
    } else {
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
  }

  choose(index) {
    const option = this.options[index];
    if (!option) return;
    this.box.value = fill(option.text, this.values());
    this.close();
    this.box.dispatchEvent(new Event("input")); // the counter, and a new message's key
    this.box.focus();
  }
}
