// The session (the Supabase access token, kept in sessionStorage) and the HTTP API.
// Every API error becomes an ApiError carrying the server's message, never a bare status.

import { apiMessage, t } from "./i18n.js";

const KEY = "lead-import.session";
// A token is refreshed a minute before it expires, or halfway through its life when it lives
// less than two minutes (else a short-lived token would be refreshed again as soon as it came).
const REFRESH_MARGIN_MS = 60_000;
const MIN_REFRESH_DELAY_MS = 1_000; // never two scheduled refreshes closer than this

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let config = null;
let refreshTimer = null;
let refreshing = null; // the refresh under way: refresh tokens rotate, so one at a time
let expired = false;
let onSignedOut = () => {};

export function setSignedOutHandler(handler) {
  onSignedOut = handler;
}

/** The session Supabase Auth handed back in the URL fragment (#access_token=…), if any:
 * stored, then removed from the address bar. Returns an error message from the fragment. */
export function takeFragment() {
  const hash = window.location.hash.slice(1);
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const clean = () => history.replaceState(history.state, "", window.location.pathname + window.location.search);
  if (params.get("error_description") || params.get("error")) {
    clean();
    return params.get("error_description") || params.get("error");
  }
  const token = params.get("access_token");
  if (!token) return null;
  // expires_in counts on this browser's clock; expires_at (the server's clock) only without it.
  const expiresAt = params.get("expires_in")
    ? Date.now() + Number(params.get("expires_in")) * 1000
    : params.get("expires_at")
      ? Number(params.get("expires_at")) * 1000
      : Date.now() + 3600_000;
  save(withRefreshTime({ access_token: token, refresh_token: params.get("refresh_token") || null, expires_at: expiresAt }));
  clean();
  return null;
}

export function useToken(token) {
  // A pasted token: its expiry is read from its payload when it has one.
  let expiresAt = Date.now() + 3600_000;
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    if (payload.exp) expiresAt = payload.exp * 1000;
  } catch {
    /* not a JWT we can read: the API decides */
  }
  save({ access_token: token.trim(), refresh_token: null, expires_at: expiresAt });
}

/** The session with the time to refresh it (refresh_at), from its remaining life. */
function withRefreshTime(s) {
  const life = Math.max(0, s.expires_at - Date.now());
  return { ...s, refresh_at: Date.now() + Math.max(life - REFRESH_MARGIN_MS, life / 2) };
}

function refreshTime(s) {
  return s.refresh_at ?? s.expires_at - REFRESH_MARGIN_MS;
}

function save(session) {
  expired = false;
  sessionStorage.setItem(KEY, JSON.stringify(session));
  scheduleRefresh(session);
}

export function session() {
  let s = null;
  try {
    s = JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    s = null;
  }
  if (s && s.expires_at <= Date.now() && !s.refresh_token) {
    signOut();
    expired = true;
    return null;
  }
  return s;
}

/** Whether the last session was dropped because it had expired. */
export function sessionExpired() {
  return expired;
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  clearTimeout(refreshTimer);
}

function scheduleRefresh(s) {
  clearTimeout(refreshTimer);
  if (!s || !s.refresh_token || !config || !config.supabase_url) return;
  const delay = Math.max(MIN_REFRESH_DELAY_MS, refreshTime(s) - Date.now());
  refreshTimer = setTimeout(() => refresh().catch(() => {}), delay);
}

/** A new access token from the refresh token (Supabase Auth's token endpoint). Callers at the
 * same time share one request: a refresh token is good for one refresh only. */
function refresh() {
  if (!refreshing) refreshing = doRefresh().finally(() => { refreshing = null; });
  return refreshing;
}

async function doRefresh() {
  const s = session();
  if (!s || !s.refresh_token || !config?.supabase_url) return false;
  const resp = await fetch(`${config.supabase_url}/auth/v1/token?grant_type=refresh_token`, {
    method: "POST",
    headers: { apikey: config.supabase_anon_key, "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: s.refresh_token }),
  });
  if (!resp.ok) return false;
  const data = await resp.json();
  if (!session()) return false; // signed out meanwhile
  save(withRefreshTime({
    access_token: data.access_token,
    refresh_token: data.refresh_token || s.refresh_token,
    expires_at: Date.now() + Number(data.expires_in || 3600) * 1000, // this browser's clock, not the server's
  }));
  return true;
}

export async function loadConfig() {
  config = await request("GET", "/api/config", undefined, { auth: false });
  const s = session();
  if (s) {
    if (refreshTime(s) <= Date.now() && s.refresh_token) await refresh().catch(() => false);
    scheduleRefresh(session());
  }
  return config;
}

/** Ask Supabase Auth for a magic link that lands back on this page. */
export async function sendMagicLink(email) {
  const redirect = window.location.origin + window.location.pathname;
  let resp;
  try {
    resp = await fetch(`${config.supabase_url}/auth/v1/otp?redirect_to=${encodeURIComponent(redirect)}`, {
      method: "POST",
      headers: { apikey: config.supabase_anon_key, "Content-Type": "application/json" },
      body: JSON.stringify({ email, create_user: false }),
    });
  } catch {
    throw new ApiError(0, "network", t("network"));
  }
  if (!resp.ok) {
    const data = await resp.json().catch(() => ({}));
    const code = data.error_code || "auth";
    throw new ApiError(resp.status, code, apiMessage(code, data.msg || data.message || t("http_error", { status: resp.status })));
  }
}

async function request(method, path, body, { auth = true, raw = false, retried = false } = {}) {
  const headers = { Accept: raw ? "*/*" : "application/json" };
  if (auth) {
    const s = session();
    if (!s) {
      onSignedOut(t("signin_required"));
      throw new ApiError(401, "unauthorized", t("signin_required"));
    }
    if (s.expires_at <= Date.now() && !(await refresh().catch(() => false))) {
      signOut();
      onSignedOut(t("signin_expired"));
      throw new ApiError(401, "token_expired", t("signin_expired"));
    }
    headers.Authorization = `Bearer ${session().access_token}`;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", t("network"));
  }
  if (raw && resp.ok) return resp;
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  const message = data?.message ? apiMessage(data.error, data.message, data) : null;
  if (resp.status === 401 && auth) {
    // The API refused a token this tab still took for valid (a computer that slept past its
    // refresh, a clock ahead): one refresh and one retry, when the session can be refreshed.
    if (!retried && session()?.refresh_token && (await refresh().catch(() => false))) {
      return request(method, path, body, { auth, raw, retried: true });
    }
    signOut();
    onSignedOut(message || t("signin_expired"));
    throw new ApiError(401, data?.error || "unauthorized", message || t("signin_expired"));
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, data?.error || `http_${resp.status}`, message || t("http_error", { status: resp.status }));
  }
  return data;
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body = {}) => request("POST", path, body),
  put: (path, body) => request("PUT", path, body),
  patch: (path, body) => request("PATCH", path, body),
  raw: (path) => request("GET", path, undefined, { raw: true }),
};

/** PUT the file's bytes to the signed upload URL, reporting progress (fetch cannot). */
export function upload(url, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let message = t("http_error", { status: xhr.status });
      try {
        const data = JSON.parse(xhr.responseText);
        if (data.message) message = apiMessage(data.error, data.message, data);
      } catch {
        /* S3 answers XML: keep the status */
      }
      reject(new ApiError(xhr.status, "upload_failed", message));
    };
    xhr.onerror = () => reject(new ApiError(0, "network", t("network")));
    xhr.send(file);
  });
}
