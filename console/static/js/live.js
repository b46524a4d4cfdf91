// Live: the server's counters read from /metrics every 5 seconds since the
// console was opened (signed in), the last hour kept in the page: decisions by verdict (per
// interval), reasons by rule, webhook events and webhook errors (since the page
// was opened).
import { metrics } from './api.js';
import { $, h, showError } from './ui.js';
import { bars, lines } from './charts.js';

const interval = 5000;
const keep = 3600 * 1000;

const samples = []; // [{t, values: Map(series → value)}], oldest first
let timer = null;

// parse reads the Prometheus text format's samples of the families wanted:
// a Map from 'name{label="v",…}' (labels as written) to the value.
export function parse(text, wanted) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!m || !wanted.includes(m[1])) continue;
    out.set(m[1] + (m[2] || ''), Number(m[3]));
  }
  return out;
}

export function labels(series) {
  const out = {};
  for (const m of series.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]] = m[2];
  return out;
}

const families = ['sendguard_decisions_total', 'sendguard_decision_reasons_total', 'sendguard_events_total', 'sendguard_webhook_requests_total', 'sendguard_webhook_skipped_total'];

export function init() {
  $('live-refresh').addEventListener('click', poll);
}

// start begins the readings (once signed in): the page's charts cover the
// time since the console was opened, whichever page was shown meanwhile.
export function start() {
  if (!timer) {
    poll();
    timer = setInterval(poll, interval);
  }
}

export function open() {
  start();
  if (samples.length) render();
}

async function poll() {
  let text;
  try {
    text = await metrics();
  } catch (e) {
    if (!$('page-live').hidden) showError(e);
    return;
  }
  const now = Date.now();
  samples.push({ t: now, values: parse(text, families) });
  while (samples.length > 2 && samples[0].t < now - keep) samples.shift();
  if (!$('page-live').hidden) render();
}

// sum adds up a sample's series of one family, grouped by key(labels) (null: skip).
function sum(values, family, key) {
  const out = {};
  for (const [series, v] of values) {
    if (!series.startsWith(family + '{') && series !== family) continue;
    const k = key(labels(series));
    if (k !== null) out[k] = (out[k] || 0) + v;
  }
  return out;
}

// since is what a family's groups grew by from the first sample to the last.
function since(family, key) {
  const first = sum(samples[0].values, family, key), last = sum(samples[samples.length - 1].values, family, key);
  return Object.entries(last).map(([k, v]) => [k, v - (first[k] || 0)]).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
}

function render() {
  const verdict = (l) => (l.verdict || '').toUpperCase() + (l.shadow === 'true' ? ' (shadow)' : '');
  const series = {};
  for (let i = 1; i < samples.length; i++) {
    const a = sum(samples[i - 1].values, 'sendguard_decisions_total', verdict), b = sum(samples[i].values, 'sendguard_decisions_total', verdict);
    const secs = (samples[i].t - samples[i - 1].t) / 1000;
    for (const k of Object.keys(b)) (series[k] ||= []).push([samples[i].t, Math.max(0, (b[k] - (a[k] || 0)) / secs)]);
  }
  const minutes = Math.max(0, Math.round((samples[samples.length - 1].t - samples[0].t) / 60000));
  $('live').replaceChildren(
    h('p', { id: 'live-span' }, `${samples.length} readings over ${minutes} min.`),
    h('div', { class: 'charts' },
      samples.length > 1 ? lines('Decisions per second by verdict', series, 'per second') : h('p', null, 'The chart of decisions starts with the second reading.'),
      bars('Decisions by verdict since opened', since('sendguard_decisions_total', verdict)),
      bars('Reasons by rule since opened', since('sendguard_decision_reasons_total', (l) => (l.shadow === 'true' ? l.rule + ' (shadow)' : l.rule)))),
    h('div', { class: 'charts' },
      bars('Webhook events since opened', since('sendguard_events_total', (l) => (l.source === 'webhook' ? `${l.type} ${l.outcome}` : null))),
      bars('Webhook errors since opened', [
        ...since('sendguard_webhook_requests_total', (l) => (l.code === '200' ? null : `HTTP ${l.code}`)),
        ...since('sendguard_webhook_skipped_total', (l) => `skipped: ${l.reason}`),
      ])));
}
