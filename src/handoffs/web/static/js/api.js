// Calls to the JSON API with the console's cookie session: the CSRF header on unsafe methods,
// a redirect to the sign-in page when the session has ended.

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `The server answered ${status}.`);
    this.status = status;
    this.body = body || {};
  }
}

/** The double-submit CSRF token: the readable `handoffs_csrf` cookie set at sign-in. */
export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "handoffs_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

export function toLogin() {
  const here = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(here)}`);
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!SAFE.has(method)) {
    const token = csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, { detail: "Could not reach the server. Check the connection and try again." });
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : null;
  if (response.status === 401 && !path.startsWith("/api/v1/auth/")) {
    toLogin();
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** A server-rendered HTML fragment of a page (see ConsoleController's parts). */
export async function fragment(path) {
  const response = await fetch(path, { headers: { Accept: "text/html" }, credentials: "same-origin" });
  if (response.redirected && new URL(response.url).pathname === "/login") {
    toLogin();
    throw new ApiError(401, { detail: "Signed out" });
  }
  if (!response.ok) throw new ApiError(response.status, null);
  return response.text();
}
