// An audience: a CSV file read in the page (csv.js), its rows judged through
// CheckSendBatch in chunks of at most 1,000, and the verdicts, summary, charts
// and output CSV that `sendguard validate` would give for the same file.
import { call } from './api.js';
import { $, h, showError, notice, time, busy } from './ui.js';
import { AudienceReader, detectColumns, csvLine } from './csv.js';
import { outcome, Summary } from './verdicts.js';
import { bars } from './charts.js';

// batchSize is CheckSendBatch's limit of requests per call.
const batchSize = 1000;
const pageSize = 50;

let result = null; // {rows, summary, cols, url}

export function init() {
  $('audience-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy($('audience-run'), run);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    if (ev.dataTransfer.files.length) $('audience-file').files = ev.dataTransfer.files;
  });
}

export function open() {}

// read turns the file's text into rows, each with its request or why it is an
// ERROR row, as validate's audit.row does.
function read(text, opts) {
  const rd = new AudienceReader(text);
  const header = rd.read();
  if (!header) throw new Error('the file is empty');
  if (header.err) throw new Error(`line ${header.line}, the header, is not CSV: ${header.err}; the line as read: ${header.raw}`);
  rd.width = header.fields.length;
  let cols;
  try {
    cols = detectColumns(header.fields);
  } catch (e) {
    throw new Error(`${e.message} (fields delimited by ${rd.comma === '\t' ? 'tab' : JSON.stringify(rd.comma)}, detected)`);
  }
  const rows = [];
  for (let rec = rd.read(); rec; rec = rd.read()) {
    const n = rows.length + 1;
    const r = { n, fields: rec.fields || [], errMsg: '', bad: '' };
    if (rec.err) {
      r.bad = 'notCSV';
      r.errMsg = `line ${rec.line} is not CSV: ${rec.err}; the line as read: ${rec.raw}`;
    } else if (rec.fields.length !== cols.width) {
      r.bad = 'width';
      r.errMsg = `line ${rec.line} has ${rec.fields.length} fields where the header has ${cols.width}; the line as read: ${rec.raw}`;
    }
    r.fields = Array.from({ length: cols.width }, (_, i) => r.fields[i] ?? '');
    if (!r.errMsg) {
      const phone = cols.phone >= 0 ? r.fields[cols.phone].trim() : '';
      const userId = cols.userID >= 0 ? r.fields[cols.userID].trim() : '';
      if (!phone && !userId) r.errMsg = 'no phone number and no user ID';
      else r.req = { ...opts, phone, userId, requestId: String(n) };
    }
    rows.push(r);
  }
  return { rows, cols, emptyLines: rd.empty, dialect: { comma: rd.comma, bom: rd.bom, crlf: rd.crlf } };
}

async function run() {
  showError(null);
  notice('');
  const file = $('audience-file').files[0];
  if (!file) return showError(new Error('choose an audience file first'));
  const priceText = $('audience-price').value.trim();
  const price = priceText === '' ? null : Number(priceText);
  if (price !== null && !(price >= 0)) return showError(new Error(`Price per message "${priceText}": want a number like 0.025`));
  const opts = {
    businessId: $('business-id').value.trim(), category: $('audience-category').value,
    template: $('audience-template').value.trim(), region: $('audience-region').value.trim().toUpperCase(),
  };
  let parsed;
  try {
    // Decoded keeping a byte order mark (File.text() drops it), so that the
    // verdicts are written with one when the file has one.
    parsed = read(new TextDecoder('utf-8', { ignoreBOM: true }).decode(await file.arrayBuffer()), opts);
  } catch (e) {
    return showError(new Error(`${file.name}: ${e.message}`));
  }
  const { rows, cols } = parsed;
  const sent = rows.filter((r) => r.req);
  $('audience-progress').hidden = false;
  $('audience-bar').max = Math.max(1, sent.length);
  $('audience-bar').value = 0;
  $('audience-count').textContent = `0 of ${sent.length}`;
  $('audience-result').replaceChildren();
  for (let i = 0; i < sent.length; i += batchSize) {
    const chunk = sent.slice(i, i + batchSize);
    let resp;
    try {
      resp = await call('CheckSendBatch', { requests: chunk.map((r) => r.req) });
    } catch (e) {
      showError(e);
      $('audience-count').textContent = `stopped after ${i} of ${sent.length} rows`;
      return;
    }
    const answers = resp.responses || [];
    chunk.forEach((r, k) => (r.resp = answers[k] || { error: { code: 13, message: 'no answer for this row' } }));
    $('audience-bar').value = i + chunk.length;
    $('audience-count').textContent = `${i + chunk.length} of ${sent.length}`;
  }
  const summary = new Summary();
  summary.emptyLines = parsed.emptyLines;
  // Written as the file is (as validate writes it): its delimiter, line ends
  // and byte order mark, so that a spreadsheet's export opens in it again.
  const { comma, bom, crlf } = parsed.dialect;
  let out = (bom ? '\ufeff' : '') + csvLine(cols.out, comma, crlf);
  for (const r of rows) {
    r.out = outcome(r.errMsg, r.resp || {});
    summary.add(r.errMsg, r.resp || {}, r.bad);
    out += csvLine([...r.fields, ...r.out], comma, crlf);
  }
  if (result?.url) URL.revokeObjectURL(result.url);
  const url = URL.createObjectURL(new Blob([out], { type: 'text/csv' }));
  result = { rows, summary, cols, url, price, name: file.name.replace(/\.[^.]*$/, '') + '.verdicts.csv', page: 0, verdict: '', rule: '' };
  render();
  notice(`Checked ${rows.length} rows.`);
}

function render() {
  const { summary: s, url, name, price } = result;
  const share = (n) => (s.rows ? ((100 * n) / s.rows).toFixed(1) + '%' : '');
  const verdicts = Object.keys(s.verdicts);
  const rules = Object.keys(s.rules).sort();
  const doomedWhy = [s.invalid ? `not a number ×${s.invalid}` : '', ...Object.keys(s.codes).sort().map((c) => `${c} ×${s.codes[c]}`)].filter(Boolean).join(', ');
  const cost = price === null ? 'set a price per message to value them' : `at ${price} per message they would have cost ${(s.unwanted * price).toFixed(2)}`;
  const malformed = s.notCSV + s.wrongWidth;
  $('audience-result').replaceChildren(
    h('div', { class: 'row' }, h('a', { href: url, download: name, id: 'audience-download' }, `Download the verdicts (${name})`)),
    malformed ? h('p', { id: 'audience-malformed' }, `${malformed} line(s) are not rows of the file (${s.notCSV} not CSV, ${s.wrongWidth} with another number of fields than the header): ERROR rows whose message holds the line number and the line as read.`) : '',
    s.emptyLines ? h('p', null, `${s.emptyLines} empty line(s) skipped.`) : '',
    h('div', { class: 'cards' },
      h('div', { class: 'card' }, h('table', { id: 'summary-verdicts' }, h('caption', null, `Verdicts of ${s.rows} rows`),
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Verdict'), h('th', { scope: 'col', class: 'num' }, 'Rows'), h('th', { scope: 'col', class: 'num' }, 'Share'))),
        h('tbody', null, verdicts.map((v) => h('tr', null, h('th', { scope: 'row', class: 'verdict v-' + v }, v),
          h('td', { class: 'num', id: 'count-' + v }, String(s.verdicts[v])), h('td', { class: 'num' }, share(s.verdicts[v]))))))),
      h('div', { class: 'card' }, h('h3', null, 'Avoided sends'),
        h('dl', null,
          h('dt', null, 'Avoided'), h('dd', { id: 'avoided' }, String(s.doomed + s.unwanted)),
          h('dt', null, 'Doomed'), h('dd', null, h('span', { id: 'avoided-doomed' }, String(s.doomed)),
            ` — Meta would refuse them${doomedWhy ? ' (' + doomedWhy + ')' : ''}: no charge, but each lowers your quality rating`),
          h('dt', null, 'Unwanted'), h('dd', null, h('span', { id: 'avoided-unwanted' }, String(s.unwanted)),
            ` — Meta would deliver them, against your own rules; ${cost}`)),
        s.verdicts.DEFER ? h('p', { class: 'muted' }, 'DEFER rows may be sent after their retry_at.') : '')),
    rules.length ? h('table', { id: 'summary-rules' }, h('caption', null, 'Rules'),
      h('thead', null, h('tr', null, ['Rule', 'Doomed', 'Unwanted', 'Shadow'].map((t, i) => h('th', { scope: 'col', class: i ? 'num' : null }, t)))),
      h('tbody', null, rules.map((r) => h('tr', { 'data-rule': r }, h('th', { scope: 'row' }, r),
        ['doomed', 'unwanted', 'shadow'].map((k) => h('td', { class: 'num', 'data-kind': k }, s.rules[r][k] ? String(s.rules[r][k]) : '-')))))) : '',
    h('div', { class: 'charts' },
      bars('Rows by verdict', verdicts.map((v) => [v, s.verdicts[v]])),
      bars('Rows by rule', rules.map((r) => [r, s.rules[r].doomed + s.rules[r].unwanted + s.rules[r].shadow]))),
    filters(verdicts, rules),
    h('div', { id: 'audience-table' }));
  renderTable();
}

function filters(verdicts, rules) {
  const sel = (id, label, values, key) => h('div', { class: 'field small' }, h('label', { for: id }, label),
    h('select', { id, onchange: (ev) => { result[key] = ev.target.value; result.page = 0; renderTable(); } },
      h('option', { value: '' }, 'all'), values.map((v) => h('option', { value: v }, v))));
  return h('div', { class: 'row' }, sel('filter-verdict', 'Verdict', verdicts, 'verdict'), sel('filter-rule', 'Rule', rules, 'rule'));
}

function renderTable() {
  const { rows, cols } = result;
  const shown = rows.filter((r) => (!result.verdict || r.out[0] === result.verdict) &&
    (!result.rule || r.out[1].split(';').some((x) => x.replace(/^shadow:/, '') === result.rule)));
  const pages = Math.max(1, Math.ceil(shown.length / pageSize));
  result.page = Math.min(result.page, pages - 1);
  const from = result.page * pageSize;
  const page = shown.slice(from, from + pageSize);
  const who = (r) => (cols.phone >= 0 && r.fields[cols.phone]) || (cols.userID >= 0 ? r.fields[cols.userID] : '');
  const go = (d) => () => { result.page += d; renderTable(); };
  $('audience-table').replaceChildren(
    h('table', null, h('caption', null, `Rows ${shown.length ? from + 1 : 0}–${from + page.length} of ${shown.length}`),
      h('thead', null, h('tr', null, ['Row', 'Recipient', 'Verdict', 'Rules', 'Retry at (your time)', 'Message'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, page.map((r) => h('tr', null, h('td', { class: 'num' }, String(r.n)), h('td', null, who(r)),
        h('td', { class: 'verdict v-' + r.out[0] }, r.out[0]), h('td', null, r.out[1]), h('td', null, time(r.out[2])), h('td', null, r.out[4]))))),
    h('div', { class: 'pager' },
      h('button', { type: 'button', class: 'secondary', disabled: result.page === 0, onclick: go(-1) }, 'Previous'),
      h('span', null, `page ${result.page + 1} of ${pages}`),
      h('button', { type: 'button', class: 'secondary', disabled: result.page >= pages - 1, onclick: go(1) }, 'Next')));
}
