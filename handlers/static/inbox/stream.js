// The live event stream: opened with a single-use ticket (EventSource cannot send an
// Authorization header), resumed after any drop from the last event seen.
//
// The browser's own reconnect would present the used ticket again, so every drop
// closes the EventSource and this opens a new one, with a new ticket and
// last_event_id: the gateway replays what was missed, in order, once.

import { SignedOut } from "./session.js";

const TYPES = ["message.created", "message.updated", "conversation.updated", "note.created"];
const RETRY_MS = [250, 500, 1000, 2000, 4000];

export class Stream {
  constructor(session, { onEvent, onReset, onOnline, onOffline, onSignedOut }) {
    this.session = session;
    this.handlers = { onEvent, onReset, onOnline, onOffline, onSignedOut };
    this.last = null;
    this.source = null;
    this.failures = 0;
    this.timer = null;
    this.running = false;
    this.connected = false;
  }

  // Resolves once the stream is subscribed: what happens after is sure to arrive, so
  // lists read from then on miss nothing.
  start() {
    this.stop();
    this.running = true;
    const opened = new Promise((resolve) => {
      this.resolveOpened = resolve;
    });
    this.connect();
    return opened;
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
    this.connected = false;
  }

  async connect() {
    if (!this.running) return;
    let ticket;
    try {
      ({ data: { ticket } } = await this.session.request("POST", "/api/v1/events/ticket/"));
    } catch (error) {
      if (error instanceof SignedOut) return this.stop();
      return this.retry();
    }
    if (!this.running) return;
    const query = new URLSearchParams({ ticket });
    const resumed = this.last !== null;
    if (resumed) query.set("last_event_id", this.last);
    const source = (this.source = new EventSource(`/api/v1/events/?${query}`));
    source.addEventListener("open", () => {
      this.failures = 0;
      this.connected = true;
      this.resolveOpened();
      this.handlers.onOnline(resumed);
    });
    for (const type of TYPES) {
      source.addEventListener(type, (event) => {
        this.last = event.lastEventId || this.last;
        this.handlers.onEvent(type, JSON.parse(event.data));
      });
    }
    source.addEventListener("reset", () => this.handlers.onReset());
    // The sign-in ended: not a drop to reconnect from, and not offline.
    source.addEventListener("signed_out", () => {
      this.stop();
      this.handlers.onSignedOut();
    });
    source.addEventListener("error", () => {
      if (source !== this.source) return;
      source.close();
      this.retry();
    });
  }

  retry() {
    this.connected = false;
    if (!this.running) return;
    this.handlers.onOffline();
    const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }
}
