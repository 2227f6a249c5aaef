// The product's public API, as any script sees it: the account key as a bearer token, JSON in and
// out, the contract's error envelope turned into an ApiError. The key lives in sessionStorage only.

const KEY = "rf-intercom-console-key";
// The API's root: the console is served at <root>/console and this module at <root>/console/api.js,
// so this holds behind a stage prefix (/prod/console) as well as locally.
export const ROOT = new URL("../", import.meta.url);

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The API answered ${status}.`);
    this.status = status;
    this.code = error.code || "http_" + status;
    this.details = Array.isArray(error.details) ? error.details : [];
  }
}

export const session = {
  key() {
    return window.sessionStorage.getItem(KEY);
  },
  signIn(key) {
    window.sessionStorage.setItem(KEY, key);
  },
  signOut() {
    window.sessionStorage.removeItem(KEY);
  },
};

/** An absolute URL for an API path (`v1/campaigns`) with its query (`{refresh: true}`); empty values are left out. */
export function url(path, query = {}) {
  const u = new URL(path.replace(/^\//, ""), ROOT);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") u.searchParams.set(name, String(value));
  }
  return u;
}

/**
 * Call the API. `onUnauthorized` runs on a 401 (the key was refused or rotated) before the error is thrown.
 * Returns the parsed JSON body, or null for an empty one (204).
 */
export function client(onUnauthorized) {
  async function call(method, path, { query, body, signal } = {}) {
    const key = session.key();
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: "omit",
      cache: "no-store",
    });
    const text = await response.text();
    let parsed = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, parsed);
      if (response.status === 401 && onUnauthorized) onUnauthorized(error);
      throw error;
    }
    return parsed;
  }
  return {
    get: (path, options) => call("GET", path, options),
    post: (path, body, options = {}) => call("POST", path, { ...options, body: body ?? {} }),
    put: (path, body, options = {}) => call("PUT", path, { ...options, body }),
    del: (path, options) => call("DELETE", path, options),
  };
}
