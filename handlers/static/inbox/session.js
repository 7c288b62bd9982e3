// The signed-in agent's tokens and every call to the API.
// Tokens live in sessionStorage (this tab only, gone with it): never localStorage or
// cookies, which outlive the tab and which other tabs or requests would carry.

const STORE = "bot-gateway.tokens";
const REFRESH_BEFORE_MS = 60_000; // rotate a minute before the access token expires

export class SignedOut extends Error {}

export class Offline extends Error {}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code || "";
  }
}

function expiresAt(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).exp * 1000;
  } catch {
    return Date.now(); // unreadable: refresh at once
  }
}

export class Session {
  constructor(onSignedOut) {
    this.onSignedOut = onSignedOut; // called once when a call finds the sign-in over
    this.tokens = JSON.parse(sessionStorage.getItem(STORE) || "null");
    this.refreshing = null;
    this.timer = null;
    if (this.tokens) this.schedule();
  }

  get signedIn() {
    return this.tokens !== null;
  }

  async signIn(username, password) {
    const response = await this.send("POST", "/auth/token/", { username, password });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, body);
    this.keep(body);
  }

  async signOut() {
    const tokens = this.tokens;
    this.forget();
    if (tokens) {
      // End the sign-in on the server too: its refresh token is refused from now on.
      await this.send("POST", "/auth/logout/", null, { Authorization: `Bearer ${tokens.access}` })
        .catch(() => {});
    }
  }

  // One API call as the agent: JSON (or a form with a file) in, JSON out, one refresh
  // and retry on a 401.
  async request(method, path, body = null, headers = {}) {
    if (!this.tokens) throw new SignedOut();
    let response = await this.authorized(method, path, body, headers);
    if (response.status === 401) {
      await this.refresh();
      response = await this.authorized(method, path, body, headers);
      if (response.status === 401) this.expired();
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data);
    return { data, headers: response.headers };
  }

  // A file through the API, as a Blob (for an image's src or a download).
  async blob(path) {
    let response = await this.authorized("GET", path, null, {});
    if (response.status === 401) {
      await this.refresh();
      response = await this.authorized("GET", path, null, {});
    }
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    return response.blob();
  }

  authorized(method, path, body, headers) {
    if (!this.tokens) throw new SignedOut();
    return this.send(method, path, body, { ...headers, Authorization: `Bearer ${this.tokens.access}` });
  }

  async send(method, path, body, headers = {}) {
    const init = { method, headers: { ...headers }, cache: "no-store" };
    if (body instanceof FormData) {
      init.body = body; // multipart: the browser writes its Content-Type and boundary
    } else if (body !== null) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      return await fetch(path, init);
    } catch {
      throw new Offline("the gateway cannot be reached");
    }
  }

  // Rotate the pair; concurrent callers share one rotation (a refresh token works once).
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.rotate().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async rotate() {
    if (!this.tokens) throw new SignedOut();
    const response = await this.send("POST", "/auth/token/refresh/", { refresh: this.tokens.refresh });
    if (response.status === 401 || response.status === 400) this.expired();
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, body);
    this.keep(body);
  }

  keep(pair) {
    this.tokens = { access: pair.access, refresh: pair.refresh };
    sessionStorage.setItem(STORE, JSON.stringify(this.tokens));
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    const left = expiresAt(this.tokens.access) - Date.now();
    const wait = Math.max(1000, left > 2 * REFRESH_BEFORE_MS ? left - REFRESH_BEFORE_MS : left / 2);
    // A silent refresh; if the gateway is unreachable the next 401 tries again.
    this.timer = setTimeout(() => this.refresh().catch(() => {}), wait);
  }

  forget() {
    clearTimeout(this.timer);
    this.tokens = null;
    sessionStorage.removeItem(STORE);
  }

  // The gateway said the sign-in is over (a password reset, a sign-out elsewhere).
  ended() {
    this.forget();
    this.onSignedOut();
  }

  expired() {
    this.ended();
    throw new SignedOut();
  }
}
