// Small DOM and formatting helpers shared by the pages.

// h builds an element: h('td', {class: 'num'}, 'text', child…). Attributes are
// set with setAttribute and children appended as nodes: a text from the server
// is never parsed as HTML.
export function h(tag, attrs, ...children) {
  const svg = ['svg', 'rect', 'text', 'line', 'polyline', 'g', 'title'].includes(tag);
  const e = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export const $ = (id) => document.getElementById(id);

// showError puts an error (an APIError or any Error) at the top of the page;
// null clears it.
export function showError(err) {
  const box = $('error');
  if (!err) {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  box.textContent = err.code ? `${err.code.toUpperCase()}: ${err.message}` : String(err.message || err);
  box.hidden = false;
}

export function notice(text) {
  $('notice').textContent = text || '';
}

const when = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' });

// time formats an RFC 3339 timestamp in the viewer's time zone; '' for none.
export function time(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return isNaN(d) ? ts : when.format(d);
}

// timeEl is a <time> with the viewer's local time and the instant as datetime.
export function timeEl(ts) {
  if (!ts) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: ts, title: ts }, time(ts), relative(ts));
}

// relative says how far an instant is from now: " (in 23h 59m)".
export function relative(ts, now = Date.now()) {
  const ms = new Date(ts) - now;
  if (isNaN(ms)) return '';
  const span = duration(Math.abs(ms) / 1000);
  return ms >= 0 ? ` (in ${span})` : ` (${span} ago)`;
}

// duration spells seconds as "2d 3h", "23h 59m", "5m 2s".
export function duration(s) {
  s = Math.round(s);
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) return hr ? `${d}d ${hr}h` : `${d}d`;
  if (hr) return m ? `${hr}h ${m}m` : `${hr}h`;
  if (m) return sec ? `${m}m ${sec}s` : `${m}m`;
  return `${sec}s`;
}

// word strips an enum's prefix: VERDICT_DEFER → DEFER.
export function word(v, prefix) {
  return v ? String(v).replace(prefix, '') : '';
}

// confirmDialog asks a yes/no question in the page's <dialog>.
export function confirmDialog(title, text, ok) {
  const d = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
    $('confirm-cancel').focus();
  });
}

// busy disables a button while work runs.
export async function busy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}
