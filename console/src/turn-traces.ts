/**
 * The trace of each message the console sends: a new W3C `traceparent` with the sampled flag (01) goes with
 * every `process_message`, so the gateway and the coordinator record that turn's spans (they keep only
 * sampled traces when no OTLP collector is configured) and the page can open it by its trace id. The trace
 * ids of this tab's turns are remembered per instance in sessionStorage (the last 200), so a reload still
 * links them.
 */
const STORAGE_PREFIX = "podium.traces.";
const KEEP = 200;

function hex(bytes: number): string {
  const buffer = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buffer, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A new sampled trace: its id, and the `traceparent` naming it (the page's own span id as the parent). */
export function newTrace(): { traceId: string; traceparent: string } {
  let traceId = hex(16);
  while (/^0+$/.test(traceId)) traceId = hex(16);
  let spanId = hex(8);
  while (/^0+$/.test(spanId)) spanId = hex(8);
  return { traceId, traceparent: `00-${traceId}-${spanId}-01` };
}

/** The trace ids this tab sent turns of `instanceId` with, by turn. */
export function rememberedTraces(instanceId: string): Record<number, string> {
  try {
    const value: unknown = JSON.parse(sessionStorage.getItem(STORAGE_PREFIX + instanceId) ?? "{}");
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<number, string>) : {};
  } catch {
    return {};
  }
}

/** Stores `traces` (as rememberedTraces read it, with new turns added), keeping the last 200 turns. */
export function rememberTraces(instanceId: string, traces: Record<number, string>): void {
  const kept = Object.keys(traces)
    .map(Number)
    .sort((a, b) => b - a)
    .slice(0, KEEP);
  const out: Record<number, string> = {};
  for (const t of kept) out[t] = traces[t] as string;
  sessionStorage.setItem(STORAGE_PREFIX + instanceId, JSON.stringify(out));
}
