/**
 * Minimal SVG line charts for the benchmark report: linear or log axes, one polyline with markers
 * per series, a legend. Plain SVG so the HTML needs no script and rsvg-convert can rasterize it.
 */

export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
}

export interface ChartSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly logX?: boolean;
  readonly logY?: boolean;
  /** Tick labels for x instead of numbers (category axes such as vCPU counts). */
  readonly xTicks?: readonly number[];
}

const W = 720;
const H = 420;
const M = { left: 80, right: 190, top: 40, bottom: 56 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${(v / 1e3).toPrecision(3)}k`;
  return v < 1 ? v.toPrecision(2) : String(Math.round(v * 100) / 100);
}

function scale(lo: number, hi: number, log: boolean, from: number, to: number): (v: number) => number {
  if (log) {
    const a = Math.log10(Math.max(lo, 1e-9));
    const b = Math.log10(Math.max(hi, lo * 10));
    return (v) => from + ((Math.log10(Math.max(v, 1e-9)) - a) / (b - a)) * (to - from);
  }
  const span = hi - lo || 1;
  return (v) => from + ((v - lo) / span) * (to - from);
}

function ticks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(Math.max(lo, 1e-9))); e <= Math.ceil(Math.log10(Math.max(hi, 1))); e++) out.push(10 ** e);
    return out;
  }
  const step = 10 ** Math.floor(Math.log10((hi - lo || 1) / 4));
  const n = Math.ceil((hi - lo) / step / 5) * step;
  const out: number[] = [];
  for (let v = Math.floor(lo / n) * n; v <= hi + 1e-9; v += n) out.push(v);
  return out;
}

/** Draws each series with a point the axes can show; a series with none gets no line and no legend entry. */
export function lineChart(c: ChartSpec): string {
  const drawable = ([x, y]: readonly [number, number]): boolean => Number.isFinite(x) && Number.isFinite(y) && (!c.logX || x > 0) && (!c.logY || y > 0);
  const series = c.series.map((s) => ({ name: s.name, points: s.points.filter(drawable) })).filter((s) => s.points.length > 0);
  const pts = series.flatMap((s) => s.points);
  const xs = pts.map(([x]) => x);
  const ys = pts.map(([, y]) => y);
  const [x0, x1] = xs.length > 0 ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  const [y0, y1] = ys.length > 0 ? [c.logY ? Math.min(...ys) : Math.min(0, ...ys), Math.max(...ys)] : [0, 1];
  const sx = scale(x0, x1, c.logX === true, M.left, W - M.right);
  const sy = scale(y0, y1 === y0 ? y0 + 1 : y1, c.logY === true, H - M.bottom, M.top);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${M.left}" y="22" font-size="15" font-weight="bold">${esc(c.title)}</text>`,
  ];
  const xt = c.xTicks ?? ticks(x0, x1, c.logX === true);
  for (const t of xt) {
    const x = sx(t);
    if (x < M.left - 1 || x > W - M.right + 1) continue;
    out.push(`<line x1="${x}" y1="${M.top}" x2="${x}" y2="${H - M.bottom}" stroke="#eee"/>`, `<text x="${x}" y="${H - M.bottom + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of ticks(y0, y1, c.logY === true)) {
    const y = sy(t);
    if (y < M.top - 1 || y > H - M.bottom + 1) continue;
    out.push(`<line x1="${M.left}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="#eee"/>`, `<text x="${M.left - 6}" y="${y + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  out.push(
    `<line x1="${M.left}" y1="${H - M.bottom}" x2="${W - M.right}" y2="${H - M.bottom}" stroke="black"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${H - M.bottom}" stroke="black"/>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 14}" text-anchor="middle">${esc(c.xLabel)}</text>`,
    `<text transform="translate(18 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] ?? 'black';
    const p = s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
    if (p.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${p.join(' ')}"/>`);
    for (const q of p) {
      const [x, y] = q.split(',');
      out.push(`<circle cx="${x ?? 0}" cy="${y ?? 0}" r="3" fill="${color}"/>`);
    }
    const ly = M.top + 8 + i * 18;
    out.push(`<rect x="${W - M.right + 14}" y="${ly - 8}" width="12" height="12" fill="${color}"/>`, `<text x="${W - M.right + 32}" y="${ly + 2}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
