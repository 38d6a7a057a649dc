/**
 * The spans of one turn on the coordinator: `podium.turn` from the message's acknowledgement (a wake
 * included) until its turn_done, and inside it the agent's span, from the `message` frame written to
 * the agent until its `turn_done` came back, reported by the coordinator under service.name
 * `podium-agent` (the SDKs report nothing themselves). The `message` frame carries the agent span's
 * context as `traceparent`, so what the agent calls with ctx.traceparent are its children.
 *
 * A turn is traced only when its message came with a context or the coordinator records spans; on the
 * NOOP tracer the spans pass the caller's context through, so the agent still gets the client's.
 */
import { formatTraceparent, type TraceContext } from "../tracing/trace-context.js";
import { SpanKind, type Span, type Tracer } from "../tracing/tracer.js";
import { inRpcSpan } from "../tracing/rpc-trace.js";
import { errorMessage } from "../shared/errors.js";
import type { SentMessage } from "./agent-instance-options.js";

export const AGENT_SERVICE = "podium-agent";

export class TurnTrace {
  private readonly turnSpan: Span;
  private agentSpan: Span | undefined;

  private constructor(
    private readonly tracer: Tracer,
    parent: TraceContext,
    private readonly instanceId: string,
  ) {
    this.turnSpan = tracer.startSpan("podium.turn", { parent, attributes: { "podium.instance_id": instanceId } });
  }

  /** A turn's trace under `parent` (the SendMessage span), or undefined when there is nothing to carry. */
  static start(tracer: Tracer, parent: Span, instanceId: string): TurnTrace | undefined {
    return parent.context ? new TurnTrace(tracer, parent.context, instanceId) : undefined;
  }

  /** The message was recorded as `turn` of that agent. */
  queued(turn: number, agentId: string, deploymentId: string, queuePosition: number): this {
    if (!this.turnSpan.recording) return this;
    this.turnSpan.setAttribute("podium.turn", turn);
    this.turnSpan.setAttribute("podium.agent_id", agentId);
    this.turnSpan.setAttribute("podium.deployment_id", deploymentId);
    this.turnSpan.setAttribute("podium.queue_position", queuePosition);
    return this;
  }

  /** The turn goes to the agent now: its span starts; returns the `message` frame's trace fields. */
  started(turn: number, deploymentId: string): { traceparent?: string; tracestate?: string } {
    const attributes = this.turnSpan.recording ? { "podium.instance_id": this.instanceId, "podium.turn": turn, "podium.deployment_id": deploymentId } : undefined;
    this.agentSpan = this.tracer.startSpan("agent onMessage", { parent: this.turnSpan.context, kind: SpanKind.CONSUMER, service: AGENT_SERVICE, ...(attributes ? { attributes } : {}) });
    const context = this.agentSpan.context;
    if (!context) return {};
    return context.traceState ? { traceparent: formatTraceparent(context), tracestate: context.traceState } : { traceparent: formatTraceparent(context) };
  }

  /** Ends the traces of turns that will not run here (superseded, or their instance ended); returns the turns. */
  static dropped(turns: readonly { turn: number; trace?: TurnTrace | undefined }[], why: string): number[] {
    for (const { trace } of turns) trace?.ended(why);
    return turns.map((t) => t.turn);
  }

  /** The turn ended (its turn_done, its process's exit, or refused before it ran); `error` marks both spans failed. */
  ended(error?: string): void {
    if (error !== undefined) {
      this.agentSpan?.fail(error);
      this.turnSpan.fail(error);
    }
    this.agentSpan?.end();
    this.turnSpan.end();
  }
}

/** The coordinator's SendMessage inside its server span; a refused message ends its turn's trace too (the turn never was). */
export function tracedSend(span: Span, trace: TurnTrace | undefined, sending: Promise<SentMessage>): Promise<SentMessage> {
  return inRpcSpan(span, "server", async () => {
    try {
      const sent = await sending;
      span.setAttribute("podium.turn", sent.turn);
      return sent;
    } catch (err) {
      trace?.ended(errorMessage(err));
      throw err;
    }
  });
}
