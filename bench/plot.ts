// A small SVG line-chart writer for benchmark results, with no dependencies: numeric x, one or
// two y axes (left and right), straight or step lines, a legend. Enough to show a step-load run
// (connections, instances, p99 over time) in docs/benchmarks.

/** One line on the chart. */
export interface Series {
  name: string;
  /** [x, y] pairs in x order; non-finite y values break the line. */
  points: readonly (readonly [number, number])[];
  /** Which y axis the series is read against. Default "left". */
  axis?: "left" | "right";
  /** Draw as a step line (the value holds until the next point), e.g. a load profile. */
  step?: boolean;
  /** CSS colour; default from a fixed palette. */
  color?: string;
  /** Dashed stroke. */
  dashed?: boolean;
}

/** What to draw. */
export interface ChartSpec {
  title: string;
  xLabel: string;
  leftLabel: string;
  rightLabel?: string;
  series: readonly Series[];
  width?: number;
  height?: number;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A "nice" tick step (1, 2 or 5 × 10^k) giving about `count` ticks over `span`. */
function tickStep(span: number, count: number): number {
  if (!(span > 0)) return 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
}

function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const step = tickStep(max, 5);
  return Math.ceil(max / step) * step;
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 1 ? 2 : 1);
}

/** Renders the chart as a standalone SVG document. */
export function lineChart(spec: ChartSpec): string {
  const width = spec.width ?? 900;
  const height = spec.height ?? 420;
  const hasRight = spec.series.some((s) => s.axis === "right");
  const m = { top: 40, right: hasRight ? 70 : 20, bottom: 80, left: 70 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;

  const xs = spec.series.flatMap((s) => s.points.map((p) => p[0]));
  const xMin = xs.length > 0 ? Math.min(...xs) : 0;
  const xMax = xs.length > 0 ? Math.max(...xs) : 1;
  const yMaxOf = (axis: "left" | "right"): number =>
    niceMax(Math.max(0, ...spec.series.filter((s) => (s.axis ?? "left") === axis).flatMap((s) => s.points.map((p) => p[1]).filter(Number.isFinite))));
  const yMax = { left: yMaxOf("left"), right: yMaxOf("right") };

  const sx = (x: number): number => m.left + (xMax > xMin ? ((x - xMin) / (xMax - xMin)) * pw : 0);
  const sy = (y: number, axis: "left" | "right"): number => m.top + ph - (y / yMax[axis]) * ph;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`);

  // Grid and axes.
  const xStep = tickStep(xMax - xMin, 10);
  for (let x = Math.ceil(xMin / xStep) * xStep; x <= xMax + 1e-9; x += xStep) {
    const px = sx(x).toFixed(1);
    out.push(`<line x1="${px}" y1="${m.top}" x2="${px}" y2="${m.top + ph}" stroke="#eee"/>`);
    out.push(`<text x="${px}" y="${m.top + ph + 16}" text-anchor="middle">${fmt(x)}</text>`);
  }
  const leftStep = tickStep(yMax.left, 5);
  for (let y = 0; y <= yMax.left + 1e-9; y += leftStep) {
    const py = sy(y, "left").toFixed(1);
    out.push(`<line x1="${m.left}" y1="${py}" x2="${m.left + pw}" y2="${py}" stroke="#eee"/>`);
    out.push(`<text x="${m.left - 6}" y="${py}" text-anchor="end" dominant-baseline="middle">${fmt(y)}</text>`);
  }
  if (hasRight) {
    const rightStep = tickStep(yMax.right, 5);
    for (let y = 0; y <= yMax.right + 1e-9; y += rightStep) {
      const py = sy(y, "right").toFixed(1);
      out.push(`<text x="${m.left + pw + 6}" y="${py}" dominant-baseline="middle">${fmt(y)}</text>`);
    }
    out.push(`<text transform="translate(${width - 16},${m.top + ph / 2}) rotate(90)" text-anchor="middle">${escapeXml(spec.rightLabel ?? "")}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${m.top + ph + 36}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(18,${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(spec.leftLabel)}</text>`);

  // Lines.
  spec.series.forEach((s, i) => {
    const axis = s.axis ?? "left";
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const segments: string[][] = [[]];
    let prevY: number | undefined;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(y)) {
        segments.push([]);
        prevY = undefined;
        continue;
      }
      const seg = segments[segments.length - 1]!;
      // A step line holds the previous value until this x, then jumps.
      if (s.step === true && prevY !== undefined) seg.push(`${sx(x).toFixed(1)},${sy(prevY, axis).toFixed(1)}`);
      seg.push(`${sx(x).toFixed(1)},${sy(y, axis).toFixed(1)}`);
      prevY = y;
    }
    const dash = s.dashed === true ? ` stroke-dasharray="6 4"` : "";
    for (const seg of segments) {
      if (seg.length > 0) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${seg.join(" ")}"/>`);
    }
    // Legend under the plot, left to right.
    const lx = m.left + i * Math.min(220, pw / Math.max(1, spec.series.length));
    const ly = height - 18;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${color}" stroke-width="3"${dash}/>`);
    out.push(`<text x="${lx + 30}" y="${ly}" dominant-baseline="middle">${escapeXml(s.name)}${hasRight ? ` (${axis})` : ""}</text>`);
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
