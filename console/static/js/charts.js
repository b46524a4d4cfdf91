// Two small SVG charts drawn by hand: horizontal bars and lines over time.
// Colours come from classes in app.css (the CSP allows no style attribute).
import { h } from './ui.js';

const colourOf = (label) => (['ALLOW', 'DEFER', 'DENY', 'ERROR'].includes(label) ? label : 'other');

// bars draws one bar per [label, value], longest first as given, with the
// value written after each bar; title names the chart for screen readers.
export function bars(title, items) {
  const rowH = 22, labelW = 170, barW = 260, width = labelW + barW + 70;
  const max = Math.max(1, ...items.map(([, v]) => v));
  const svg = h('svg', { width, height: Math.max(rowH, items.length * rowH) + 4, role: 'img', 'aria-label': title, viewBox: `0 0 ${width} ${Math.max(rowH, items.length * rowH) + 4}` },
    h('title', null, title));
  items.forEach(([label, value], i) => {
    const y = i * rowH + 2;
    const w = Math.max(value > 0 ? 2 : 0, Math.round((value / max) * barW));
    svg.append(
      h('text', { x: labelW - 6, y: y + 15, 'text-anchor': 'end' }, label),
      h('rect', { x: labelW, y: y + 3, width: w, height: rowH - 6, class: 'fill-' + colourOf(label) }),
      h('text', { x: labelW + w + 6, y: y + 15 }, String(value)));
  });
  if (!items.length) svg.append(h('text', { x: 4, y: 15 }, 'nothing yet'));
  return h('figure', { class: 'chart' }, h('figcaption', null, title), svg);
}

// lines draws series {label: [[t, value]…]} over the times given, with a legend.
export function lines(title, series, unit) {
  const width = 520, height = 180, left = 44, bottom = 20, top = 8;
  const all = Object.values(series).flat();
  const t0 = Math.min(...all.map(([t]) => t)), t1 = Math.max(...all.map(([t]) => t));
  const max = Math.max(1, ...all.map(([, v]) => v));
  const x = (t) => left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * (width - left - 8) : 0);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  const svg = h('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title }, h('title', null, title),
    h('line', { x1: left, y1: y(0), x2: width - 4, y2: y(0), class: 'axis' }),
    h('line', { x1: left, y1: top, x2: left, y2: y(0), class: 'axis' }),
    h('text', { x: left - 4, y: top + 10, 'text-anchor': 'end' }, fmt(max)),
    h('text', { x: left - 4, y: y(0), 'text-anchor': 'end' }, '0'));
  if (all.length) {
    const clock = (t) => new Date(t).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
    svg.append(h('text', { x: left, y: height - 4 }, clock(t0)), h('text', { x: width - 4, y: height - 4, 'text-anchor': 'end' }, clock(t1)));
  }
  for (const [label, points] of Object.entries(series)) {
    svg.append(h('polyline', { points: points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' '), class: 'stroke-' + colourOf(label) }));
  }
  const legend = h('div', { class: 'legend' }, Object.keys(series).map((l) => h('span', null, h('span', { class: 'swatch sw-' + colourOf(l), 'aria-hidden': 'true' }), l)));
  return h('figure', { class: 'chart' }, h('figcaption', null, `${title} (${unit})`), svg, legend);
}

function fmt(v) {
  return v >= 100 ? String(Math.round(v)) : String(Math.round(v * 100) / 100);
}
