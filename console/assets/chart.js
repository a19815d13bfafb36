// Small SVG charts (bars for days and for stages) drawn from figures the page already holds.
// Each chart is an image with a label that says what it shows, and each bar names its value on
// hover; the figures it draws are also printed beside it, so nothing is only in the picture.

import { svg } from "./dom.js";

const WIDTH = 600;

/**
 * Bars, one per `[label, value]` (a `null` value: nothing recorded that day, no bar): `title` is what the chart shows (its accessible name),
 * `every` labels every n-th bar on the axis.
 */
export function bars(points, { title, height = 180, every = 1, unit = "" }) {
  const top = 16;
  const bottom = 22;
  const left = 36;
  const plot = height - top - bottom;
  const max = Math.max(1, ...points.map(([, v]) => v ?? 0));
  const step = (WIDTH - left) / Math.max(1, points.length);
  const barWidth = Math.max(2, step * 0.7);
  const y = (v) => top + plot - (v / max) * plot;
  return svg(
    "svg",
    {
      viewBox: `0 0 ${WIDTH} ${height}`,
      class: "chart",
      role: "img",
      "aria-label": title,
      preserveAspectRatio: "xMidYMid meet",
    },
    svg("title", {}, title),
    svg("line", { x1: left, x2: WIDTH, y1: top + plot, y2: top + plot, class: "axis" }),
    svg("text", { x: left - 4, y: top + 4, class: "tick", "text-anchor": "end" }, String(max)),
    svg("text", { x: left - 4, y: top + plot, class: "tick", "text-anchor": "end" }, "0"),
    points.map(([label, value], i) => {
      const x = left + i * step + (step - barWidth) / 2;
      return [
        value === null || value === undefined
          ? null
          : svg(
          "rect",
          { x, y: y(value), width: barWidth, height: Math.max(0, top + plot - y(value)), class: "bar" },
          svg("title", {}, `${label}：${value}${unit}`),
            ),
        i % every === 0
          ? svg("text", { x: x + barWidth / 2, y: height - 6, class: "tick", "text-anchor": "middle" }, label)
          : null,
      ];
    }),
  );
}
