// What one answer of CheckSendBatch means for an audience, as `sendguard
// validate` counts it (internal/audience: outRecord, Summary.add).
// Which avoided sends are doomed or unwanted is not decided here: that is
// classification.js, generated from internal/audience, the classification
// validate uses. The browser tests run validate and this page on the same
// files and compare every row's verdict and rules and every count, so the
// counting cannot drift apart either.

import { classify, reasonDoomed } from './classification.js';

export { classify, reasonDoomed };

const codeNames = ['OK', 'CANCELED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED',
  'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

export const verdictWord = (v) => String(v || 'VERDICT_UNSPECIFIED').replace(/^VERDICT_/, '');
export const ruleWord = (r) => String(r || 'RULE_UNSPECIFIED').replace(/^RULE_/, '');

// ceilSecond rounds a protojson timestamp up to the second, in UTC, as RFC 3339:
// a retry at the printed time is never early.
export function ceilSecond(ts) {
  const m = /^(.*?:\d\d)(\.(\d+))?Z$/.exec(ts);
  if (!m) return ts;
  let ms = Date.parse(m[1] + 'Z');
  if (m[3] && /[1-9]/.test(m[3])) ms += 1000;
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

// outcome is an answered (or unsent) row's output cells: verdict, rules,
// retry_at, phone_e164, message.
export function outcome(errMsg, resp) {
  if (errMsg) return ['ERROR', '', '', '', errMsg];
  if (resp.error) return ['ERROR', '', '', '', `${codeNames[resp.error.code] || 'CODE(' + resp.error.code + ')'}: ${resp.error.message || ''}`];
  let verdict = verdictWord(resp.verdict), msg = '';
  if (resp.duplicate) {
    verdict = 'DUPLICATE';
    msg = `already reserved (by another worker, an earlier run, or an earlier row with the same recipient): do not send; the verdict now would be ${verdictWord(resp.verdict)}`;
  }
  const rules = (resp.reasons || []).map((r) => (r.shadow ? 'shadow:' : '') + ruleWord(r.rule)).join(';');
  return [verdict, rules, resp.retryAt ? ceilSecond(resp.retryAt) : '', resp.phoneE164 || '', msg];
}

// Summary counts a run as validate's auditSummary does.
export class Summary {
  constructor() {
    this.rows = 0;
    this.verdicts = { ALLOW: 0, DEFER: 0, DENY: 0, ERROR: 0 };
    this.rules = {}; // rule word → {doomed, unwanted, shadow}
    this.codes = {}; // Meta error code → doomed rows predicting it
    this.invalid = 0;
    this.doomed = 0;
    this.unwanted = 0;
    this.shadowed = 0;
    this.notCSV = 0;
    this.wrongWidth = 0;
    this.emptyLines = 0;
  }

  // add counts one row: bad is 'notCSV', 'width' or ''.
  add(errMsg, resp, bad) {
    this.rows++;
    if (bad === 'notCSV') this.notCSV++;
    if (bad === 'width') this.wrongWidth++;
    if (errMsg || resp.error) {
      this.verdicts.ERROR++;
      return;
    }
    if (resp.duplicate) {
      this.verdicts.DUPLICATE = (this.verdicts.DUPLICATE || 0) + 1;
      return;
    }
    const v = verdictWord(resp.verdict);
    this.verdicts[v] = (this.verdicts[v] || 0) + 1;
    if (resp.verdict === 'VERDICT_ALLOW' && resp.shadow) this.shadowed++;
    for (const r of resp.reasons || []) {
      const c = (this.rules[ruleWord(r.rule)] ||= { doomed: 0, unwanted: 0, shadow: 0 });
      if (r.shadow) c.shadow++;
      else if (reasonDoomed(r)) c.doomed++;
      else c.unwanted++;
    }
    switch (classify(resp)) {
      case 'doomed':
        this.doomed++;
        for (const r of resp.reasons || []) {
          if (r.shadow) continue;
          if (r.metaErrorCode) this.codes[r.metaErrorCode] = (this.codes[r.metaErrorCode] || 0) + 1;
          else if (r.rule === 'RULE_INVALID_NUMBER') this.invalid++;
        }
        break;
      case 'unwanted':
        this.unwanted++;
        break;
    }
  }
}
