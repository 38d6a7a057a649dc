/**
 * The rows of a trace's waterfall: spans in tree order (each under its parent, siblings by start), with
 * their depth and where their bar sits on the trace's time line (percentages of its whole span). DOM-free.
 */
export interface TraceSpanJson {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  service: string;
  name: string;
  kind: string;
  start_time: string;
  start_ms: number;
  duration_ms: number;
  attributes: Record<string, string | number | boolean>;
  status: { code: "UNSET" | "ERROR"; message?: string };
}

export interface TraceJson {
  trace_id: string;
  spans: TraceSpanJson[];
  unreachable: { coordinator_id: string; error: string }[];
}

export interface WaterfallRow {
  span: TraceSpanJson;
  depth: number;
  /** Start, from the trace's first start, in ms. */
  offsetMs: number;
  /** The bar's left edge and width, in % of the trace's length. */
  left: number;
  width: number;
}

export function waterfallRows(spans: readonly TraceSpanJson[]): { rows: WaterfallRow[]; totalMs: number } {
  if (spans.length === 0) return { rows: [], totalMs: 0 };
  const start = Math.min(...spans.map((s) => s.start_ms));
  const end = Math.max(...spans.map((s) => s.start_ms + s.duration_ms));
  const totalMs = Math.max(end - start, 0.001);
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map<string | null, TraceSpanJson[]>();
  for (const span of spans) {
    // A span whose parent is not here (the caller's own, or lost) is shown as a root.
    const parent = span.parent_span_id !== null && ids.has(span.parent_span_id) ? span.parent_span_id : null;
    const list = children.get(parent) ?? [];
    list.push(span);
    children.set(parent, list);
  }
  const rows: WaterfallRow[] = [];
  const visit = (parent: string | null, depth: number) => {
    for (const span of (children.get(parent) ?? []).sort((a, b) => a.start_ms - b.start_ms)) {
      const offsetMs = span.start_ms - start;
      rows.push({ span, depth, offsetMs, left: (offsetMs / totalMs) * 100, width: Math.max((span.duration_ms / totalMs) * 100, 0.2) });
      visit(span.span_id, depth + 1);
    }
  };
  visit(null, 0);
  return { rows, totalMs };
}

/** A duration for people: 0.42 ms, 12.3 ms, 1.24 s. */
export function formatDuration(ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms < 100 ? ms.toFixed(1) : Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}
