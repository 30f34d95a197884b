// The gateway's REST API, as the console calls it: same-origin fetch with
// the HttpOnly session cookie, and the session's CSRF token on every
// state-changing request. Errors carry the API's own message.

import { CSRF_HEADER } from './contract.js';

let csrfToken = null;

/** An error answer of the API (`ErrorBody`), or a network failure. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function setCsrf(token) {
  csrfToken = token;
}

export function hasCsrf() {
  return csrfToken !== null;
}

/** Calls the API; resolves to the parsed JSON body (or null for 204). */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers[CSRF_HEADER] = csrfToken;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch (e) {
    throw new ApiError(0, 'network', `Cannot reach the gateway (${e.message}).`);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const code = json && json.error ? json.error : `http_${res.status}`;
    const message = json && json.message ? json.message : `The gateway answered ${res.status} ${res.statusText}.`;
    const err = new ApiError(res.status, code, message);
    if (res.status === 401 && code === 'unauthorized' && !path.endsWith('/auth/login')) {
      window.dispatchEvent(new CustomEvent('jg-unauthenticated'));
    }
    throw err;
  }
  return json;
}

/** Fetches a text resource (e.g. a recording's asciicast). */
export async function apiText(path) {
  let res;
  try {
    res = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'network', `Cannot reach the gateway (${e.message}).`);
  }
  const text = await res.text();
  if (!res.ok) {
    let message = `The gateway answered ${res.status}.`;
    let code = `http_${res.status}`;
    try {
      const j = JSON.parse(text);
      message = j.message || message;
      code = j.error || code;
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, code, message);
  }
  return text;
}

export const get = (p) => api('GET', p);
export const post = (p, b) => api('POST', p, b);
export const put = (p, b) => api('PUT', p, b);
export const patch = (p, b) => api('PATCH', p, b);
export const del = (p, b) => api('DELETE', p, b);

/** A path segment, escaped. */
export const seg = (s) => encodeURIComponent(s);

/**
 * Sends a text body of another type (a policy as YAML) and resolves to the
 * parsed JSON answer. A 400 whose body is JSON resolves too when `keep400`
 * (validation answers carry their problems).
 */
export async function sendText(method, path, text, contentType, extraHeaders = {}) {
  const headers = { accept: 'application/json', 'content-type': contentType, ...extraHeaders };
  if (csrfToken) headers[CSRF_HEADER] = csrfToken;
  let res;
  try {
    res = await fetch(path, { method, headers, body: text, credentials: 'same-origin', cache: 'no-store', redirect: 'error' });
  } catch (e) {
    throw new ApiError(0, 'network', `Cannot reach the gateway (${e.message}).`);
  }
  const body = await res.text();
  let json = null;
  try {
    json = body ? JSON.parse(body) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, json && json.error ? json.error : `http_${res.status}`, json && json.message ? json.message : `The gateway answered ${res.status}.`);
    err.body = json;
    throw err;
  }
  return json;
}
