/**
 * GET /api/v1/traces/{trace_id}: one trace's spans from the gateway's own memory and from every coordinator
 * it knows (CoordinatorService.GetTrace, in parallel, 5 s each). A coordinator that does not answer is named
 * in `unreachable` rather than failing the read; a trace nobody keeps is NOT_FOUND.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayCore } from "./gateway-core.js";
import type { FinishedSpan } from "../tracing/tracer.js";
import { requireTraceId, spanFromProto, spanToJson, type SpanJson } from "../tracing/span-proto.js";
import { errorMessage } from "../shared/errors.js";
import { eitherSignal } from "../shared/either-signal.js";

export type TraceJson = {
  trace_id: string;
  /** By start time. */
  spans: SpanJson[];
  /** Coordinators whose spans could not be read (their part of the trace is missing). */
  unreachable: { coordinator_id: string; error: string }[];
};

const COORDINATOR_TIMEOUT_MS = 5_000;

export async function readTrace(core: Pick<GatewayCore, "spans" | "directory">, rawTraceId: string, signal?: AbortSignal): Promise<TraceJson> {
  const traceId = requireTraceId(rawTraceId);
  const spans = new Map<string, FinishedSpan>();
  for (const span of core.spans.trace(traceId)) spans.set(span.spanId, span);
  const unreachable: TraceJson["unreachable"] = [];
  const coordinators = await core.directory.all(signal);
  await Promise.all(
    coordinators.map(async (coordinator) => {
      try {
        const timeout = AbortSignal.timeout(COORDINATOR_TIMEOUT_MS);
        const answer = await coordinator.control.getTrace({ traceId }, { signal: eitherSignal(signal, timeout) });
        for (const span of answer.spans) spans.set(span.spanId, spanFromProto(span));
      } catch (err) {
        unreachable.push({ coordinator_id: coordinator.id, error: errorMessage(err) });
      }
    }),
  );
  if (spans.size === 0 && unreachable.length === 0)
    throw new ConnectError(`no spans of trace ${traceId} are kept (only sampled traces are, and only the last 10,000 spans of each process)`, Code.NotFound);
  const sorted = [...spans.values()].sort((a, b) => a.startMs - b.startMs);
  return { trace_id: traceId, spans: sorted.map(spanToJson), unreachable };
}
