/**
 * The console's DOM-free logic, run under Node: the line diff of the workspace view, the Prometheus text
 * reader of the coordinators view, and the instance page's event log (turns, open requests, replays).
 */
import { describe, expect, it } from "@jest/globals";
import { lineDiff } from "../../console/src/line-diff.js";
import { parsePrometheus } from "../../console/src/prometheus-text.js";
import { counterRate, histogramMean, histogramQuantile, maxOf, sumOf } from "../../console/src/metric-math.js";
import { EventLog } from "../../console/src/event-log.js";
import { formatDuration, waterfallRows, type TraceSpanJson } from "../../console/src/trace-waterfall.js";

describe("lineDiff", () => {
  it("keeps common lines and marks what was added and removed, in order", () => {
    expect(lineDiff("a\nb\nc\n", "a\nc\nd\n")).toEqual([
      { kind: "same", text: "a" },
      { kind: "removed", text: "b" },
      { kind: "same", text: "c" },
      { kind: "added", text: "d" },
    ]);
  });

  it("diffs against nothing (a created or deleted file)", () => {
    expect(lineDiff("", "x\ny")).toEqual([
      { kind: "added", text: "x" },
      { kind: "added", text: "y" },
    ]);
    expect(lineDiff("x", "")).toEqual([{ kind: "removed", text: "x" }]);
  });

  it("handles long files with one change without a quadratic table", () => {
    const before = Array.from({ length: 50_000 }, (_, i) => `line ${i}`);
    const after = [...before];
    after[25_000] = "changed";
    const diff = lineDiff(before.join("\n"), after.join("\n"));
    expect(diff.filter((l) => l.kind !== "same")).toEqual([
      { kind: "removed", text: "line 25000" },
      { kind: "added", text: "changed" },
    ]);
  });
});

describe("parsePrometheus", () => {
  it("reads samples with labels, skipping comments", () => {
    const text = [
      "# HELP podium_instances Live instances.",
      "# TYPE podium_instances gauge",
      'podium_instances{coordinator_id="c-1"} 3',
      'podium_replication_lag_seconds{coordinator_id="c-1",agent_id="a \\"quoted\\""} 0.25',
      "podium_gateway_coordinators 2",
    ].join("\n");
    expect(parsePrometheus(text)).toEqual([
      { name: "podium_instances", labels: { coordinator_id: "c-1" }, value: 3 },
      { name: "podium_replication_lag_seconds", labels: { coordinator_id: "c-1", agent_id: 'a "quoted"' }, value: 0.25 },
      { name: "podium_gateway_coordinators", labels: {}, value: 2 },
    ]);
  });
});

describe("EventLog", () => {
  const event = (seq: number, messageType: string, content?: Record<string, string | number | boolean>, turn?: number) => ({
    seq,
    messageType,
    timestamp: "2026-12-06T00:00:00.000Z",
    ...(content ? { content } : {}),
    ...(turn !== undefined ? { turn } : {}),
  });

  it("assembles each turn's reply, with the message this page sent", () => {
    const log = new EventLog();
    log.noteSent("hi there");
    log.append(event(2, "stream_start", { turn: 1 }, 1));
    log.append(event(3, "stream_update", { text: "hi " }, 1));
    log.append(event(4, "stream_update", { text: "there" }, 1));
    log.append(event(4, "stream_update", { text: "there" }, 1)); // a replayed duplicate
    log.append(event(5, "turn.done", { turn: 1, ok: true }, 1));
    expect(log.turns.get(1)).toEqual({ turn: 1, sent: "hi there", reply: "hi there", done: true, ok: true, error: undefined });
    expect(log.events).toHaveLength(4);
    expect(log.lastSeq).toBe(5);
  });

  it("keeps permission and question requests open until resolved or their turn ends", () => {
    const log = new EventLog();
    log.append(event(2, "tool.permission_requested", { request_id: "r1", tool_name: "bash" }, 1));
    log.append(event(3, "tool.question_requested", { request_id: "r2", question: "?" }, 1));
    expect([...log.pending.keys()]).toEqual(["r1", "r2"]);
    log.append(event(4, "tool.approval_resolved", { request_id: "r1" }, 1));
    expect([...log.pending.keys()]).toEqual(["r2"]);
    log.append(event(5, "turn.done", { turn: 1, ok: false }, 1));
    expect(log.pending.size).toBe(0);
  });

  it("counts state and workspace changes and notes the end, also a synthesized terminated repeating a seq", () => {
    const log = new EventLog();
    log.append(event(2, "state.delta", { version: 1 }, 1));
    log.append(event(3, "workspace.changed", { iteration: 1 }, 1));
    log.append(event(3, "terminated", { reason: "coordinator lost" }));
    expect([log.stateDeltas, log.workspaceChanges, log.terminated]).toEqual([1, 1, "coordinator lost"]);
  });
});

describe("waterfallRows", () => {
  const span = (id: string, parent: string | null, start: number, duration: number): TraceSpanJson => ({
    trace_id: "t",
    span_id: id,
    parent_span_id: parent,
    service: "s",
    name: id,
    kind: "INTERNAL",
    start_time: "",
    start_ms: start,
    duration_ms: duration,
    attributes: {},
    status: { code: "UNSET" },
  });

  it("orders spans as a tree (children under their parent, by start) and places their bars on the trace's time line", () => {
    const { rows, totalMs } = waterfallRows([span("agent", "turn", 1010, 80), span("turn", "rest", 1005, 95), span("rest", "caller", 1000, 10), span("other", "rest", 1002, 1)]);
    expect(totalMs).toBe(100);
    expect(rows.map((r) => [r.span.span_id, r.depth])).toEqual([
      ["rest", 0],
      ["other", 1],
      ["turn", 1],
      ["agent", 2],
    ]);
    expect(rows.find((r) => r.span.span_id === "agent")).toMatchObject({ offsetMs: 10, left: 10, width: 80 });
    expect(waterfallRows([])).toEqual({ rows: [], totalMs: 0 });
  });

  it("formats durations", () => {
    expect([formatDuration(0.4213), formatDuration(12.34), formatDuration(250.4), formatDuration(1240)]).toEqual(["0.42 ms", "12.3 ms", "250 ms", "1.24 s"]);
  });
});

describe("metric math", () => {
  const samples = parsePrometheus(
    ['h_seconds_bucket{le="0.1"} 1', 'h_seconds_bucket{le="1"} 3', 'h_seconds_bucket{le="+Inf"} 4', "h_seconds_sum 6.2", "h_seconds_count 4", 'lag{agent_id="a"} 2', 'lag{agent_id="b"} 5'].join("\n"),
  );
  it("sums, maxima, a histogram's mean and the bucket holding a quantile, a counter's rate", () => {
    expect([sumOf(samples, "lag"), maxOf(samples, "lag"), sumOf(samples, "none")]).toEqual([7, 5, undefined]);
    expect(histogramMean(samples, "h_seconds")).toBeCloseTo(1.55);
    expect([histogramQuantile(samples, "h_seconds", 0.25), histogramQuantile(samples, "h_seconds", 0.5), histogramQuantile(samples, "h_seconds", 0.99)]).toEqual([0.1, 1, Infinity]);
    expect(histogramMean([], "h_seconds")).toBeUndefined();
    expect(counterRate({ at: 1000, value: 10 }, { at: 3000, value: 30 })).toBe(10);
    expect(counterRate(undefined, { at: 3000, value: 30 })).toBeUndefined();
    expect(counterRate({ at: 1000, value: 50 }, { at: 3000, value: 30 })).toBeUndefined(); // a restart reset it
  });
});
