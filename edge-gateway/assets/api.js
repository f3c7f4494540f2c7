// Everything that talks to the API.
//
// The session cookie is HttpOnly: the browser sends it and no script can
// read it. The CSRF token is the one other secret, and it lives only in this
// module's memory (never in web storage): after a reload
// the console asks GET /api/v1/auth/session for it again.

let csrf = null;
let onSignedOut = () => {};

/// A refused or failed request, with the problem document's fields.
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `Request failed (${status})`);
    this.status = status;
    this.problem = problem;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

/// Called when a request answers 401 after sign-in: the session is gone.
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

/// One request. JSON in and out; text answers come back as strings.
export async function request(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, { detail: `Could not reach the server (${err.message}).` });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  if (!response.ok) {
    const problem = type.includes("json") ? await response.json().catch(() => ({})) : {};
    const error = new ApiError(response.status, problem);
    if (response.status === 401 && csrf && !path.startsWith("/api/v1/auth/")) {
      forget();
      onSignedOut(error);
    }
    throw error;
  }
  return type.startsWith("application/json") ? response.json() : response.text();
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);
export const patch = (path, body) => request("PATCH", path, body);
export const put = (path) => request("PUT", path);
export const del = (path) => request("DELETE", path);

/// Every item of a paged list (the console's lists are small; a bound
/// keeps a huge one from looping for ever).
export async function all(path, max = 2000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await get(`${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

/// The signed-in session, or null. Recovers the CSRF token after a reload.
export async function restore() {
  try {
    const session = await get("/api/v1/auth/session");
    csrf = session.csrf_token;
    return session;
  } catch (err) {
    if (err.status === 401) return null;
    throw err;
  }
}

export async function login(body) {
  const session = await post("/api/v1/auth/login", body);
  csrf = session.csrf_token;
  return session;
}

export async function logout() {
  try {
    await post("/api/v1/auth/logout");
  } finally {
    forget();
  }
}

function forget() {
  csrf = null;
  closeEvents();
}

// --- live changes ---------------------------------------------------------

let source = null;
const listeners = new Set();
let onStatus = () => {};

/// Opens GET /api/v1/events. The browser reconnects by itself; the status
/// callback shows whether the console is live.
export function openEvents(status) {
  closeEvents();
  onStatus = status;
  const mine = new EventSource("/api/v1/events");
  source = mine;
  mine.addEventListener("open", () => onStatus(true));
  mine.addEventListener("error", () => {
    onStatus(false);
    // The browser retries dropped connections itself, but gives up on a
    // refusal (e.g. 503 when too many consoles follow changes): try again
    // later, unless signed out or reopened meanwhile.
    if (mine.readyState === EventSource.CLOSED) {
      setTimeout(() => source === mine && openEvents(status), 30000);
    }
  });
  mine.addEventListener("change", (event) => {
    let change;
    try {
      change = JSON.parse(event.data);
    } catch {
      return;
    }
    for (const listener of listeners) listener(change);
  });
  // Fell behind: everything may have changed.
  mine.addEventListener("resync", () => {
    for (const listener of listeners) listener({ kind: "*" });
  });
}

export function closeEvents() {
  if (source) source.close();
  source = null;
  onStatus(false);
}

/// Calls `listener(change)` for every change; returns the unsubscribe.
export function onChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
