// Reading an audience file exactly as `sendguard validate` does
// (internal/audience: reader.go, and DetectColumns in columns.go): the
// same records, the same lines that are not CSV, the same columns found. The
// browser tests run both on the same files and compare every row.
//
// Lines end with "\n" or "\r\n"; a byte order mark before the first is
// dropped; empty lines are skipped. A quoted field may span up to
// maxRecordLines lines when the record then has the header's number of fields;
// a stray quote makes only its own line not CSV.

const maxLineBytes = 1 << 20;
const maxRecordLines = 10;
const keptLongLine = 1 << 10;

const errBareQuote = 'a " inside a field that does not start with one (quote the whole field and double the ")';
const errAfterQuote = 'text after the " that closes a quoted field (a " inside a quoted field is written "")';
const errNeverClosed = 'a quoted field opened on this line never closes';
const errTooManyLines = `a quoted field opened on this line does not close within ${maxRecordLines} lines`;
const errLineTooLong = `the line is longer than ${maxLineBytes >> 20} MiB`;
const errRecordTooLong = `a quoted field opened on this line runs past ${maxLineBytes >> 20} MiB`;

const utf8 = new TextEncoder();
// byteLength is a string's length in UTF-8 (a string of n UTF-16 units is at
// most 3n bytes, so most lines need no encoding).
const byteLength = (s) => (s.length * 3 <= maxLineBytes ? Math.min(s.length * 3, utf8.encode(s).length) : utf8.encode(s).length);
const isLong = (s) => s.length > maxLineBytes / 3 && byteLength(s) > maxLineBytes;

const delimiters = [',', ';', '\t', '|'];

// detectDelimiter: the one of , ; tab | that occurs most often outside quotes
// in the header (ties to the earlier), "," when none does.
export function detectDelimiter(header) {
  const counts = [0, 0, 0, 0];
  let quoted = false;
  for (const c of header) {
    if (c === '"') {
      quoted = !quoted;
      continue;
    }
    if (quoted) continue;
    const i = delimiters.indexOf(c);
    if (i >= 0) counts[i]++;
  }
  let best = 0;
  for (let i = 1; i < 4; i++) if (counts[i] > counts[best]) best = i;
  return delimiters[best];
}

// AudienceReader reads the records of an audience file's text.
export class AudienceReader {
  constructor(text) {
    // The file's dialect, which the output keeps (as validate's does): a byte
    // order mark, and CRLF when its first line ends with one.
    this.bom = text.startsWith('\ufeff');
    if (this.bom) text = text.slice(1);
    const nl = text.indexOf('\n');
    this.crlf = nl > 0 && text[nl - 1] === '\r' && !isLong(text.slice(0, nl - 1));
    this.lines = text.split('\n');
    if (this.lines[this.lines.length - 1] === '') this.lines.pop();
    for (let i = 0; i < this.lines.length; i++) if (this.lines[i].endsWith('\r')) this.lines[i] = this.lines[i].slice(0, -1);
    this.next = 0; // index of the next line to read
    this.width = 0; // the header's number of fields, once read
    this.empty = 0; // empty lines skipped
    const first = this.lines.find((l) => l.length > 0);
    this.comma = first === undefined ? ',' : detectDelimiter(first);
  }

  // read returns the next record {fields, line, lines, raw} or a line that is
  // not CSV {line, lines: 1, raw, err}; null at the end.
  read() {
    for (;;) {
      if (this.next >= this.lines.length) return null;
      const l = this.lines[this.next];
      const line = this.next + 1;
      if (isLong(l)) {
        this.next++;
        return { line, lines: 1, raw: keptText(l) + '…', err: errLineTooLong };
      }
      if (l === '') {
        this.next++;
        this.empty++;
        continue;
      }
      let { fields, n, err } = this.parse();
      if (!err && n > 1 && this.width > 0 && fields.length !== this.width) {
        err = `a quoted field opened on this line closes on line ${line + n - 1}, but the row then has ${fields.length} fields, not ${this.width}: the " is a stray one`;
      }
      if (err) {
        this.next++;
        return { line, lines: 1, raw: l, err };
      }
      const rec = { fields, line, lines: n };
      if (this.width > 0 && fields.length !== this.width) rec.raw = l;
      this.next += n;
      return rec;
    }
  }

  // parse reads the record that starts at the next line.
  parse() {
    let li = 0;
    let line = this.lines[this.next];
    let size = byteLength(line);
    let i = 0;
    const fields = [];
    const comma = this.comma;
    for (;;) {
      if (i >= line.length || line[i] !== '"') {
        const j = line.indexOf(comma, i);
        const end = j < 0 ? line.length : j;
        const field = line.slice(i, end);
        if (field.includes('"')) return { err: errBareQuote };
        fields.push(field);
        if (j < 0) return { fields, n: li + 1 };
        i = end + 1;
        continue;
      }
      i++;
      let buf = '';
      for (;;) {
        const j = line.indexOf('"', i);
        if (j < 0) {
          buf += line.slice(i);
          li++;
          if (li >= maxRecordLines) return { err: errTooManyLines };
          if (this.next + li >= this.lines.length) return { err: errNeverClosed };
          const next = this.lines[this.next + li];
          size += byteLength(next) + 1;
          if (isLong(next) || size > maxLineBytes) return { err: errRecordTooLong };
          buf += '\n';
          line = next;
          i = 0;
          continue;
        }
        buf += line.slice(i, j);
        i = j + 1;
        if (i < line.length && line[i] === '"') {
          buf += '"';
          i++;
          continue;
        }
        break;
      }
      fields.push(buf);
      if (i === line.length) return { fields, n: li + 1 };
      if (line[i] === comma) i++;
      else return { err: errAfterQuote };
    }
  }
}

// keptText is the start of a long line that is kept for its message.
function keptText(s) {
  let out = '', bytes = 0;
  for (const ch of s) {
    const b = utf8.encode(ch).length;
    if (bytes + b > keptLongLine) break;
    out += ch;
    bytes += b;
  }
  return out;
}

// Header names that hold a phone number or a user ID, most specific first (as
// internal/audience/columns.go's phoneHeaders and userIDHeaders).
const phoneHeaders = [
  'phone', 'phonenumber', 'phonee164', 'e164', 'msisdn', 'whatsapp', 'whatsappnumber',
  'whatsappphone', 'waid', 'mobile', 'mobilenumber', 'mobilephone', 'cellphone', 'cell',
  'telefone', 'telefono', 'celular', 'movil', 'telephone', 'tel', 'number', 'numero',
  'to', 'recipient',
];
const userIDHeaders = ['userid', 'bsuid', 'wauserid', 'whatsappuserid', 'businessscopeduserid'];

// normalizeHeader folds a header for matching: lower case, accents and
// everything but letters and digits removed.
export function normalizeHeader(s) {
  let out = '';
  for (const ch of s.normalize('NFD')) {
    if (/\p{Mn}/u.test(ch)) continue;
    if (/[\p{L}\p{Nd}]/u.test(ch)) out += ch.toLowerCase();
  }
  return out;
}

// outColumns follow the input's in every output row (validate without --reserve).
const outColumns = ['verdict', 'rules', 'retry_at', 'phone_e164', 'message'];

// detectColumns finds the phone and user ID columns by their header names;
// it throws when neither is there.
export function detectColumns(header) {
  const names = header.map((h) => h.replace(/^\ufeff/, ''));
  const norms = names.map(normalizeHeader);
  const find = (candidates) => {
    for (const c of candidates) {
      const i = norms.indexOf(c);
      if (i >= 0) return i;
    }
    return -1;
  };
  const phone = find(phoneHeaders), userID = find(userIDHeaders);
  if (phone >= 0 && phone === userID) throw new Error(`the phone and user ID columns are both "${names[phone]}"`);
  if (phone < 0 && userID < 0) throw new Error(`no phone column in the header (${names.join(', ')}): name it phone, phone_number, msisdn, mobile, whatsapp, wa_id, number…`);
  const taken = new Set(names.map((n) => n.toLowerCase()));
  const out = [...names, ...outColumns.map((n) => (taken.has(n) ? 'sendguard_' + n : n))];
  return { width: names.length, phone, userID, out };
}

// goSpace matches a field that starts with what Go's unicode.IsSpace calls
// space (which a field starting with it makes encoding/csv quote): not JS's \s,
// which counts U+FEFF and not U+0085.
const goSpace = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;

// csvLine writes one output row as Go's encoding/csv writes it with Comma comma
// and UseCRLF crlf: a field is quoted when it holds the delimiter, a quote, a
// line end or starts with a space, or is \. exactly; with crlf a quoted
// field's "\r" is dropped and its "\n" written "\r\n", and the row ends "\r\n".
export function csvLine(fields, comma = ',', crlf = false) {
  return fields.map((f) => {
    const quote = f === '\\.' || f.includes(comma) || /["\r\n]/.test(f) || goSpace.test(f);
    if (!quote) return f;
    let q = f.replace(/"/g, '""');
    if (crlf) q = q.replace(/\r/g, '').replace(/\n/g, '\r\n');
    return '"' + q + '"';
  }).join(comma) + (crlf ? '\r\n' : '\n');
}
