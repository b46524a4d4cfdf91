// A business: its effective policy and overrides (GetPolicy), a form that
// changes the overrides with an update_mask (SetPolicy), and the account and
// sender restrictions in force (ClearRestriction).
import { call } from './api.js';
import { $, h, showError, notice, timeEl, word, duration, confirmDialog, busy } from './ui.js';

// Durations in the form: "24h", "1h 30m", "7d", "6s"; protojson's are "86400s".
function parseDuration(text) {
  const t = text.replace(/\s+/g, '');
  if (t === '0') return '0s';
  const re = /(\d+(?:\.\d+)?)(d|h|m|s)/g;
  let total = 0, used = 0, m;
  while ((m = re.exec(t))) {
    total += parseFloat(m[1]) * { d: 86400, h: 3600, m: 60, s: 1 }[m[2]];
    used += m[0].length;
  }
  if (!used || used !== t.length) throw new Error(`"${text}" is not a duration: write it like 24h, 90m, 7d or 1h 30m`);
  return `${total}s`;
}
const showDuration = (d) => (d === undefined ? '' : duration(parseFloat(d)));
const list = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

// kinds: how a field is shown (text) and read back from its input (value).
const kinds = {
  bool: { show: (v) => (v === undefined ? '' : String(v)), read: (t) => t === 'true', options: ['', 'true', 'false'] },
  int: {
    show: (v) => (v === undefined ? '' : String(v)),
    read: (t) => {
      if (!/^\d+$/.test(t)) throw new Error(`"${t}" is not a whole number`);
      return Number(t);
    },
  },
  text: { show: (v) => (v === undefined ? '' : v), read: (t) => t },
  enum: { show: (v) => v || '', read: (t) => t, options: ['', 'NUMBER_VALIDATION_VALID', 'NUMBER_VALIDATION_POSSIBLE'] },
  duration: { show: showDuration, read: parseDuration },
  durations: { show: (v) => (v || []).map(showDuration).join(', '), read: (t) => list(t).map(parseDuration) },
  words: { show: (v) => (v || []).join(', '), read: list },
  rules: { show: (v) => (v || []).map((r) => word(r, 'RULE_')).join(', '), read: (t) => list(t).map((r) => 'RULE_' + r.toUpperCase().replace(/^RULE_/, '')) },
  caps: {
    show: (v) => (v || []).map((c) => `${c.count}/${showDuration(c.window)}`).join(', '),
    read: (t) => list(t).map((c) => {
      const m = /^(\d+)\s*\/\s*(.+)$/.exec(c);
      if (!m) throw new Error(`"${c}" is not a cap: write it like 2/24h (at most 2 sends in any 24 hours)`);
      return { count: Number(m[1]), window: parseDuration(m[2]) };
    }),
  },
  hours: {
    show: (v) => (v ? `${v.start}-${v.end}` : ''),
    read: (t) => {
      const m = /^(\d\d:\d\d)\s*-\s*(\d\d:\d\d)$/.exec(t);
      if (!m) throw new Error(`"${t}" is not a period: write it like 21:00-08:00`);
      return { start: m[1], end: m[2] };
    },
  },
};

// fields are the Policy fields the form shows, by their JSON name.
const fields = [
  ['requireOptIn', 'bool', 'Deny marketing without a recorded opt-in'],
  ['frequencyCaps', 'caps', 'Frequency caps (count/window, e.g. 2/24h, 5/7d)'],
  ['quietHours', 'hours', "Quiet hours in the recipient's time (e.g. 21:00-08:00)"],
  ['templateRepeatWindow', 'duration', 'Do not repeat a marketing template within'],
  ['messagingLimit', 'int', 'Messaging limit (unique users per 24 h; 0 = off)'],
  ['blockedRegions', 'words', 'Regions where marketing is not delivered'],
  ['optOutKeywords', 'words', 'Opt-out keywords'],
  ['optInKeywords', 'words', 'Opt-in keywords'],
  ['ecosystemCooldown', 'duration', 'Cooldown after a 131049'],
  ['ecosystemCooldownMax', 'duration', 'Longest 131049 cooldown'],
  ['experimentTtl', 'duration', 'How long a 130472 is kept'],
  ['serviceWindow', 'duration', 'Customer service window'],
  ['undeliverableBackoff', 'durations', 'Backoff after 131026 failures'],
  ['pairInterval', 'duration', 'Pair rate interval'],
  ['pairBurst', 'int', 'Pair rate burst'],
  ['shareNumberSignals', 'bool', 'Share number-wide facts across businesses'],
  ['shadow', 'bool', 'Whole business in shadow mode'],
  ['shadowRules', 'rules', 'Rules in shadow mode (e.g. FREQUENCY_CAP)'],
  ['defaultRegion', 'text', 'Region of national spellings'],
  ['numberValidation', 'enum', 'Number validation'],
];

let initial = {}; // the inputs' text as loaded

export function init() {
  $('policy-load').addEventListener('click', (ev) => busy(ev.target, load));
  $('policy-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(ev.submitter || $('policy-form').querySelector('button[type=submit]'), save);
  });
}

export function open() {
  load();
}

async function load() {
  showError(null);
  try {
    const resp = await call('GetPolicy', { businessId: $('business-id').value.trim() });
    render(resp);
  } catch (e) {
    $('policy-form').hidden = true;
    $('restrictions').replaceChildren();
    showError(e);
  }
}

function render(resp) {
  const eff = resp.effective || {}, over = resp.overrides || {};
  initial = {};
  const rows = fields.map(([name, kind, label]) => {
    const k = kinds[kind];
    const id = 'policy-' + name;
    const text = k.show(over[name]);
    initial[name] = text;
    const input = k.options
      ? h('select', { id, name }, k.options.map((o) => h('option', { value: o, selected: o === text }, o === '' ? '(default)' : word(o, 'NUMBER_VALIDATION_').toLowerCase())))
      : h('input', { id, name, value: text, autocomplete: 'off', spellcheck: 'false', placeholder: '(default)' });
    return h('tr', null, h('th', { scope: 'row' }, h('label', { for: id }, label)),
      h('td', { id: 'effective-' + name }, (kind === 'enum' ? word(eff[name], 'NUMBER_VALIDATION_').toLowerCase() : k.show(eff[name])) || h('span', { class: 'muted' }, 'off')),
      h('td', null, input));
  });
  rows.push(h('tr', null, h('th', { scope: 'row' }, 'An opt-in keyword records consent'),
    h('td', null, String(!!eff.keywordOptInIsConsent)), h('td', { class: 'muted' }, 'set in the configuration file')));
  $('policy-rows').replaceChildren(...rows);
  $('policy-form').hidden = false;
  renderRestrictions(resp.restrictions || []);
}

async function save() {
  showError(null);
  notice('');
  const policy = {}, mask = [];
  try {
    for (const [name, kind, label] of fields) {
      const text = $('policy-' + name).value.trim();
      if (text === initial[name]) continue;
      mask.push(name);
      if (text === '') continue; // unset: back to the deployment default
      try {
        policy[name] = kinds[kind].read(text);
      } catch (e) {
        throw new Error(`${label}: ${e.message}`);
      }
    }
  } catch (e) {
    showError(e);
    return;
  }
  if (!mask.length) {
    notice('Nothing changed.');
    return;
  }
  try {
    const resp = await call('SetPolicy', { businessId: $('business-id').value.trim(), policy, updateMask: mask.join(',') });
    notice(`Saved: ${mask.join(', ')}.`);
    const again = await call('GetPolicy', { businessId: $('business-id').value.trim() }).catch(() => ({ ...resp, restrictions: [] }));
    render(again);
  } catch (e) {
    showError(e);
  }
}

function renderRestrictions(list) {
  if (!list.length) {
    $('restrictions').replaceChildren(h('p', null, 'No account or sender restriction is in force.'));
    return;
  }
  $('restrictions').replaceChildren(h('table', { id: 'restriction-table' },
    h('caption', null, 'Restrictions in force'),
    h('thead', null, h('tr', null, ['Rule', 'Sender', 'Meta error', 'Since', 'Until', 'Verdict', 'Detail', ''].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, list.map((r) => h('tr', null,
      h('td', null, word(r.rule, 'RULE_')), h('td', null, r.sender || 'the account'), h('td', null, String(r.metaErrorCode || '')),
      h('td', null, timeEl(r.since)), h('td', null, r.until ? timeEl(r.until) : 'until lifted'),
      h('td', null, word(r.verdict, 'VERDICT_')), h('td', null, r.detail || ''),
      h('td', null, h('button', {
        type: 'button', class: 'secondary', 'aria-label': `Lift ${word(r.rule, 'RULE_')} on ${r.sender || 'the account'}`,
        onclick: (ev) => lift(ev.target, r),
      }, 'Lift')))))));
}

async function lift(button, r) {
  const ok = await confirmDialog('Lift this restriction?',
    `${word(r.rule, 'RULE_')} on ${r.sender || 'the account'} (Meta error ${r.metaErrorCode}) stops applying now. Meta may still refuse sends.`, 'Lift');
  if (!ok) return;
  await busy(button, async () => {
    showError(null);
    try {
      const resp = await call('ClearRestriction', { businessId: $('business-id').value.trim(), sender: r.sender || '', rule: r.rule });
      notice(`Lifted ${(resp.cleared || []).length} restriction(s).`);
      await load();
    } catch (e) {
      showError(e);
    }
  });
}
