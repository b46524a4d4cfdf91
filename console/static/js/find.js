// Find a number: everything GetContact knows about one recipient of the
// business, the decision each category would get now, and the actions on it
// (SetOptOut, ForgetContact).
import { call } from './api.js';
import { $, h, showError, notice, timeEl, word, confirmDialog, busy } from './ui.js';

// A business-scoped user ID: a region code, a dot and Meta's id.
const bsuid = /^[A-Za-z]{2}\.[A-Za-z0-9]+$/;

let last = null; // the request of the contact shown

export function init() {
  $('find-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const who = $('find-who').value.trim();
    const req = { businessId: $('business-id').value.trim(), region: $('find-region').value.trim().toUpperCase() };
    if (bsuid.test(who)) req.userId = who;
    else req.phone = who;
    busy(ev.submitter || $('find-form').querySelector('button'), () => lookUp(req));
  });
}

export function open() {
  $('find-who').focus();
}

async function lookUp(req) {
  showError(null);
  try {
    const resp = await call('GetContact', req);
    last = req;
    render(resp.contact || {});
  } catch (e) {
    $('contact').replaceChildren();
    showError(e);
  }
}

function row(label, ...value) {
  return [h('dt', null, label), h('dd', null, ...value)];
}

function card(title, ...rows) {
  return h('div', { class: 'card' }, h('h3', null, title), h('dl', null, ...rows));
}

function render(c) {
  const n = c.number || {};
  const optOut = [];
  if (c.metaOptedOut) optOut.push(h('strong', null, "Opted out by Meta's record"), ' (131050 or a marketing stop; only the user can lift it) ');
  if (c.optedOut) optOut.push(h('strong', null, 'Opted out of your marketing'), c.optOutReason ? ` — ${c.optOutReason}` : '');
  if (!c.metaOptedOut && !c.optedOut) optOut.push(c.suppressed ? 'Suppressed (a forgotten opt-out)' : 'Not opted out');
  const windowOpen = c.serviceWindowUntil ? ['open until ', timeEl(c.serviceWindowUntil)] : ['closed'];
  const freeEntry = c.freeEntryWindowUntil
    ? ['open until ', timeEl(c.freeEntryWindowUntil), ' (a free entry point: marketing is not held back by the experiment)']
    : ['closed'];
  $('contact').replaceChildren(
    h('div', { class: 'cards' },
      card('Identity',
        row('Number', c.phoneE164 || h('span', { class: 'muted' }, 'unknown')),
        row('WhatsApp ID', c.waId || h('span', { class: 'muted' }, 'as the number')),
        row('User ID (BSUID)', c.userId || h('span', { class: 'muted' }, 'none linked'))),
      card('Opt-out and consent',
        row('Opt-out', ...optOut),
        row('Opted out at', timeEl(c.optedOutAt)),
        row('Consent', c.consentAt ? ['given ', timeEl(c.consentAt), c.consentReason ? ` — ${c.consentReason}` : ''] : 'none recorded')),
      card('Windows',
        row('Customer service window', ...windowOpen),
        row('Free entry point window', h('span', { id: 'free-entry' }, ...freeEntry)),
        row('Last inbound', timeEl(c.lastInboundAt))),
      card('Number-wide facts',
        row('131049 cooldown until', timeEl(n.ecosystemUntil)),
        row('131049 streak', String(n.ecosystemStreak || 0)),
        row('130472 experiment until', timeEl(n.experimentUntil)),
        row('131026 backoff until', timeEl(n.undeliverableUntil)),
        row('Last delivered', timeEl(n.lastDeliveredAt)))),
    decisions(c.decisions || []),
    restrictions(c.restrictions || []),
    actions(c),
    sends(c.sends || []),
    timeline(c.events || []));
}

// reasonSentence says one reason as a sentence.
export function reasonSentence(r) {
  const parts = [r.detail || word(r.rule, 'RULE_')];
  if (r.metaErrorCode) parts.push(`Meta would answer ${r.metaErrorCode}.`);
  if (r.shadow) parts.push('(Shadowed: reported, not blocking.)');
  return parts.join(' ').replace(/([^.)])$/, '$1.');
}

function decisions(list) {
  return h('table', { id: 'decisions' },
    h('caption', null, 'The decision each category would get now'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Category'), h('th', { scope: 'col' }, 'Verdict'),
      h('th', { scope: 'col' }, 'Why'), h('th', { scope: 'col' }, 'Retry at (your time)'))),
    h('tbody', null, list.map((d) => {
      const v = word(d.decision?.verdict, 'VERDICT_');
      const reasons = d.decision?.reasons || [];
      return h('tr', { 'data-category': word(d.category, 'CATEGORY_').toLowerCase() },
        h('th', { scope: 'row' }, word(d.category, 'CATEGORY_').toLowerCase()),
        h('td', null, h('span', { class: 'verdict v-' + v }, v), reasons.length ? ' ' + reasons.filter((r) => !r.shadow).map((r) => word(r.rule, 'RULE_')).join(' ') : ''),
        h('td', null, reasons.length ? h('ul', null, reasons.map((r) => h('li', null, reasonSentence(r), r.until ? [' Until ', timeEl(r.until), '.'] : ''))) : 'No rule applies.'),
        h('td', { class: 'retry' }, d.decision?.retryAt ? timeEl(d.decision.retryAt) : ''));
    })));
}

function restrictions(list) {
  if (!list.length) return '';
  return h('div', null, h('h3', null, 'Restrictions in force'),
    h('ul', null, list.map((r) => h('li', null, `${word(r.rule, 'RULE_')} ${r.sender ? 'sender ' + r.sender : 'account'}: ${r.detail || ''} `, r.until ? ['until ', timeEl(r.until)] : 'until lifted'))));
}

function actions(c) {
  const reason = h('input', { id: 'optout-reason', autocomplete: 'off', placeholder: 'support ticket 123' });
  const act = (optedOut) => async (ev) => {
    await busy(ev.target, async () => {
      showError(null);
      try {
        const r = await call('SetOptOut', { ...who(), optedOut, reason: reason.value.trim() });
        notice(optedOut ? 'Opted out of your marketing.' : `Opted in (consent recorded)${r.metaOptedOut ? "; Meta's opt-out stays in force" : ''}.`);
        await lookUp(last);
      } catch (e) {
        showError(e);
      }
    });
  };
  const forgetOptOut = h('input', { type: 'checkbox', id: 'forget-optout' });
  const forget = async (ev) => {
    const ok = await confirmDialog('Forget this recipient?',
      `Every record of ${c.phoneE164 || c.userId || 'this recipient'} for this business is erased: sends, events, consent` +
      (forgetOptOut.checked ? ', and the opt-out too.' : '. An opt-out stays as a suppression entry.'), 'Forget');
    if (!ok) return;
    await busy(ev.target, async () => {
      showError(null);
      try {
        const r = await call('ForgetContact', { ...who(), forgetOptOut: forgetOptOut.checked });
        notice(r.found ? `Forgotten${r.suppressed ? '; the opt-out is kept as a suppression entry' : ''}.` : 'Nothing was stored for this recipient.');
        await lookUp(last);
      } catch (e) {
        showError(e);
      }
    });
  };
  return h('div', { class: 'card' }, h('h3', null, 'Actions'),
    h('div', { class: 'actions' },
      h('div', { class: 'field' }, h('label', { for: 'optout-reason' }, 'Reason (recorded with the change)'), reason),
      h('button', { type: 'button', id: 'opt-out', onclick: act(true) }, 'Opt out'),
      h('button', { type: 'button', id: 'opt-in', class: 'secondary', onclick: act(false) }, 'Opt in')),
    h('div', { class: 'actions' },
      h('span', null, forgetOptOut, ' ', h('label', { for: 'forget-optout' }, 'Forget the opt-out too')),
      h('button', { type: 'button', id: 'forget', class: 'danger', onclick: forget }, 'Forget…')));
}

// who names the recipient shown, as it was looked up.
function who() {
  const { businessId, phone, userId, region } = last;
  return { businessId, phone, userId, region };
}

function sends(list) {
  if (!list.length) return '';
  return h('table', null, h('caption', null, 'Recent sends counted'),
    h('thead', null, h('tr', null, ['When', 'Category', 'Template', 'Campaign', 'Ref', 'State'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, list.map((s) => h('tr', null, h('td', null, timeEl(s.at)), h('td', null, word(s.category, 'CATEGORY_').toLowerCase()),
      h('td', null, s.template || ''), h('td', null, s.campaignId || ''), h('td', null, s.messageRef || s.messageId || ''),
      h('td', null, s.failed ? 'failed' : 'counted')))));
}

function timeline(list) {
  return h('div', null, h('h3', null, 'Timeline'),
    list.length ? h('ul', { class: 'timeline', id: 'timeline' }, list.map((e) => h('li', null, timeEl(e.at), ' ', e.description)))
      : h('p', { class: 'muted' }, 'No events recorded.'));
}
