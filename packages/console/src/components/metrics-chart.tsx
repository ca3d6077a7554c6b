import { useEffect, useRef } from "react";
import uPlot from "uplot";

const WINDOW_SEC = 180;

/** One line over time (seconds since epoch → value), redrawn as samples arrive. */
export function MetricsChart(props: {
  title: string;
  unit: string;
  times: number[];
  values: number[];
  max?: number | undefined;
}) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot>(undefined);
  const { title, unit, max } = props;

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const chart = new uPlot(
      {
        width: Math.max(240, element.clientWidth),
        height: 160,
        legend: { show: false },
        cursor: { show: true },
        scales: {
          // The last few minutes, however few samples there are yet.
          x: { time: true, range: (_u, _min, dataMax) => [dataMax - WINDOW_SEC, dataMax + 2] },
          y: { range: (_u, _min, dataMax) => [0, Math.max(max ?? 0, dataMax, 1)] },
        },
        axes: [
          {
            stroke: "#8a94a6",
            grid: { stroke: "#8a94a622" },
            values: (_u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString()),
          },
          { stroke: "#8a94a6", grid: { stroke: "#8a94a622" }, size: 56 },
        ],
        series: [{}, { label: title, stroke: "#3b82f6", width: 2, fill: "#3b82f622" }],
      },
      [[], []],
      element,
    );
    plot.current = chart;
    const observer = new ResizeObserver(() =>
      chart.setSize({ width: Math.max(240, element.clientWidth), height: 160 }),
    );
    observer.observe(element);
    return () => {
      observer.disconnect();
      chart.destroy();
    };
  }, [title, max]);

  useEffect(() => {
    plot.current?.setData([props.times, props.values]);
  }, [props.times, props.values]);

  const last = props.values.at(-1);
  return (
    <figure className="chart">
      <figcaption>
        {title}:{" "}
        <strong>
          {last === undefined ? "–" : `${last.toFixed(1)} ${unit}`}
          {max ? ` of ${max} ${unit}` : ""}
        </strong>
      </figcaption>
      <div ref={host} aria-hidden="true" />
    </figure>
  );
}
