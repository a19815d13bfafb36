// The admin API as the console calls it: the session cookie travels by itself; changes carry
// the CSRF token the sign-in answered. Every figure on every page comes through here.

let csrfToken = null;
let onSignedOut = () => {};

/** A refusal from the API: its status and its `error`. */
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function setCsrfToken(token) {
  csrfToken = token;
}

/** What to do when the API says the session is gone (401). */
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

/** Calls `/api/v1{path}`; answers the JSON (or text) body, throws ApiError on a refusal. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch("/api/v1" + path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "无法连接服务：" + e.message, null);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const reason = (data && data.error) || response.statusText;
    if (response.status === 401 && path !== "/session") onSignedOut();
    throw new ApiError(response.status, reason, data);
  }
  return data;
}

/** `?key=value&…` of the non-empty entries of `params`. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? "?" + text : "";
}

/** A path segment: ids may hold any character. */
export function segment(id) {
  return encodeURIComponent(id);
}
