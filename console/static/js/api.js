// The server's public JSON API (the Connect protocol) and /metrics, with the
// API key of this tab. The key lives in sessionStorage only: never in a URL,
// a cookie or any storage that outlives the tab.

const keyName = 'sendguard.key';
const businessName = 'sendguard.business';

export const session = {
  key: () => sessionStorage.getItem(keyName) || '',
  setKey: (k) => (k ? sessionStorage.setItem(keyName, k) : sessionStorage.removeItem(keyName)),
  business: () => sessionStorage.getItem(businessName) || '',
  setBusiness: (b) => sessionStorage.setItem(businessName, b),
};

// APIError is an answer that is not a success: the Connect code (e.g.
// "permission_denied") and the server's message.
export class APIError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
  toString() {
    return `${this.code.toUpperCase()}: ${this.message}`;
  }
}

function headers(json) {
  const h = {};
  if (json) {
    h['Content-Type'] = 'application/json';
    h['Connect-Protocol-Version'] = '1';
  }
  const k = session.key();
  if (k) h.Authorization = 'Bearer ' + k;
  return h;
}

async function errorOf(resp) {
  const text = await resp.text();
  try {
    const j = JSON.parse(text);
    if (j && j.code) return new APIError(j.code, j.message || '', resp.status);
  } catch {
    // not JSON: the text itself
  }
  return new APIError(`http ${resp.status}`, text.trim() || resp.statusText, resp.status);
}

// call sends one unary RPC of sendguard.v1.SendGuard and returns its answer,
// or throws an APIError with the server's code and message.
export async function call(method, request) {
  let resp;
  try {
    resp = await fetch('/sendguard.v1.SendGuard/' + method, {
      method: 'POST', headers: headers(true), body: JSON.stringify(request),
      credentials: 'omit', cache: 'no-store',
    });
  } catch (e) {
    throw new APIError('unavailable', `the server did not answer ${method}: ${e.message}`, 0);
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp.json();
}

// metrics reads the API port's copy of /metrics (Prometheus text).
export async function metrics() {
  let resp;
  try {
    resp = await fetch('/metrics', { headers: headers(false), credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    throw new APIError('unavailable', `the server did not answer /metrics: ${e.message}`, 0);
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp.text();
}
