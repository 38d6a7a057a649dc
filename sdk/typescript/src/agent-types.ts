/**
 * The agent author's surface: what an entry module exports and what `ctx` offers. Three type
 * parameters, all optional: `S` the state, `E` the agent's own event types (added to the seed
 * vocabulary of agent-events.ts, which `ctx.send` is checked against), `M` the message content.
 */
import type { AgentEvents, EventMap, PermissionRequest, SendContent } from "./agent-events.js";
import type { Json, JsonObject } from "./json-value.js";

/** Who and where the agent is; passed to a function `initialState`. */
export interface AgentInfo {
  readonly instanceId: string;
  readonly agentId: string;
  readonly deploymentId: string;
  /** Absolute path of the workspace; also the process cwd. */
  readonly workspace: string;
  /** init.env: environment merged with secrets. Also in process.env. */
  readonly env: Readonly<Record<string, string>>;
}

export interface AgentLog {
  (...args: unknown[]): void;
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface AskOptions {
  /** Suggested answers, sent as content.choices. */
  choices?: string[];
  /** Extra fields merged into the event content. */
  details?: Record<string, unknown>;
  /** Reject with a TimeoutError when no answer arrives in time. */
  timeoutMs?: number;
}

// biome-ignore lint/complexity/noBannedTypes: `{}` is the empty event map (no events of the agent's own); `Record<never, never>` reads worse in users' hovers
export interface AgentContext<S extends object = JsonObject, E extends EventMap<E> = {}> extends AgentInfo {
  /** The turn being handled (0 in onStart; the last turn in onStop). */
  readonly turn: number;
  /** Aborted when the host cancels this turn or stops the agent. */
  readonly signal: AbortSignal;
  /**
   * The turn's W3C trace context (`00-<trace id>-<span id>-<flags>`), when the message came with one or the
   * platform traces: send it as the `traceparent` header of the agent's own calls to continue the trace.
   * Undefined in onStart / onStop and for an untraced message. See docs/observability.md.
   */
  readonly traceparent: string | undefined;
  /** The W3C `tracestate` that came with `traceparent`, to send beside it; undefined when there was none. */
  readonly tracestate: string | undefined;
  /**
   * The agent's state. Mutate it in place (or assign a new object); every change becomes a JSON
   * Patch op sent at the end of the turn. Only JSON values are allowed (see sdk/README.md).
   */
  state: S;
  /**
   * Emits an event for this turn, e.g. send("stream_update", { text }). `type` is one of the seed
   * vocabulary's (SeedEvents) or the agent's own (`E`); `content` is that type's content shape.
   */
  send<T extends keyof AgentEvents<E> & string>(type: T, ...content: SendContent<AgentEvents<E>[T]>): void;
  /** Structured log line (level info); also log.debug / info / warn / error. */
  readonly log: AgentLog;
  /**
   * Sends `tool.question_requested` {request_id, question, choices?, ...details} and resolves with
   * the host's answer. Rejects when the turn is cancelled or after options.timeoutMs.
   */
  ask(question: string, options?: AskOptions): Promise<Json>;
  /** Sends `tool.permission_requested` {request_id, ...request} and resolves with the answer. */
  requestPermission(request: PermissionRequest): Promise<Json>;
  /**
   * Schedules `message` as a later turn of this agent and resolves with the schedule's id. `when`: a delay
   * in ms, a Date, or a cron expression (UTC; 5 fields, or 6 with seconds first). The turn gets `message`
   * plus `{scheduled: {id, due_at}}`; it runs even if the instance hibernated meanwhile. Rejects when the
   * host refuses it (a bad cron, too many schedules).
   */
  schedule(when: number | Date | string, message?: Record<string, unknown>): Promise<string>;
  /** Cancels a schedule; false when there is none with this id (it ran, or never existed). */
  cancelSchedule(id: string): Promise<boolean>;
  /** The agent's schedules, soonest first. */
  schedules(): Promise<ScheduleInfo[]>;
}

/** A schedule as ctx.schedules() lists it. */
export interface ScheduleInfo {
  id: string;
  when: { delay_ms: number } | { at: string } | { cron: string };
  message: JsonObject;
  /** RFC 3339: when it runs next. */
  due_at: string;
  created_at: string;
  /** "agent" (ctx.schedule) or "deployment" (podium.json `schedules`). */
  source: "agent" | "deployment";
}

/** What an entry module exports (see defineAgent in index.ts). */
// biome-ignore lint/complexity/noBannedTypes: `{}` is the empty event map (no events of the agent's own); `Record<never, never>` reads worse in users' hovers
export interface Agent<S extends object = JsonObject, E extends EventMap<E> = {}, M extends object = JsonObject> {
  /** The state of a brand-new instance: a value (copied) or a function returning one. */
  initialState?: S | ((info: AgentInfo) => S | Promise<S>);
  onStart?(ctx: AgentContext<S, E>): void | Promise<void>;
  /** One turn; `message` is the content of the message (a client's `{text, ...}`, or a schedule's). */
  onMessage(ctx: AgentContext<S, E>, message: M): void | Promise<void>;
  onStop?(ctx: AgentContext<S, E>): void | Promise<void>;
  /**
   * The instance hibernates (idle for its deployment's hibernate_after_ms): this process ends, its state and
   * workspace stay as they are, and the next message starts a new process from them (onStart runs again,
   * initialState does not). Runs instead of onStop; state changes made here are kept.
   */
  onHibernate?(ctx: AgentContext<S, E>): void | Promise<void>;
}
