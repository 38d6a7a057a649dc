/** The `ctx` handed to onStart / onMessage / onStop: one per turn, all sharing the state tracker. */
import type { AnyEvents, PermissionRequest } from "./agent-events.js";
import type { AgentContext, AgentInfo, AgentLog, AskOptions, ScheduleInfo } from "./agent-types.js";
import type { FrameWriter } from "./frame-io.js";
import type { Json, JsonObject } from "./json-value.js";
import type { PendingRequests } from "./pending-requests.js";
import type { StateTracker } from "./tracked-state.js";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface ContextDeps {
  info: AgentInfo;
  writer: FrameWriter;
  tracker: StateTracker;
  requests: PendingRequests;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Strings as they are, errors with their stack, other values as JSON (node:util costs ~10 ms of start-up). */
function formatArg(arg: unknown): string {
  if (typeof arg === "string") return arg;
  if (arg instanceof Error) return arg.stack ?? `${arg.name}: ${arg.message}`;
  if (typeof arg === "object" && arg !== null) {
    try {
      return JSON.stringify(arg) ?? String(arg);
    } catch {
      return String(arg);
    }
  }
  return String(arg);
}

/** Writes a `log` frame; shared by ctx.log and the runner's own diagnostics. */
export function writeLog(writer: FrameWriter, level: LogLevel, args: readonly unknown[], fields?: JsonObject): void {
  const message = args.map(formatArg).join(" ");
  writer.write(fields ? { type: "log", level, message, fields } : { type: "log", level, message });
}

/** Untyped inside: an agent's declared types are compile-time only, its `send` is checked here at run time. */
export class TurnContext implements AgentContext<JsonObject, AnyEvents> {
  readonly instanceId: string;
  readonly agentId: string;
  readonly deploymentId: string;
  readonly workspace: string;
  readonly env: Readonly<Record<string, string>>;
  readonly log: AgentLog;

  constructor(
    private readonly deps: ContextDeps,
    readonly turn: number,
    readonly signal: AbortSignal,
    readonly traceparent: string | undefined = undefined,
    readonly tracestate: string | undefined = undefined,
  ) {
    ({ instanceId: this.instanceId, agentId: this.agentId, deploymentId: this.deploymentId, workspace: this.workspace, env: this.env } = deps.info);
    const at =
      (level: LogLevel) =>
      (...args: unknown[]) =>
        writeLog(deps.writer, level, args, { turn });
    this.log = Object.assign(at("info"), { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") });
  }

  get state(): JsonObject {
    return this.deps.tracker.state;
  }

  set state(value: JsonObject) {
    this.deps.tracker.replace(value);
  }

  send(messageType: string, content?: object): void {
    if (typeof messageType !== "string" || messageType.length === 0 || messageType.length > 128) {
      throw new TypeError("send(messageType): messageType must be a non-empty string of at most 128 characters");
    }
    if (content !== undefined && content !== null && !isRecord(content)) throw new TypeError("send(messageType, content): content must be an object");
    const frame = content ? { type: "event", turn: this.turn, messageType, content } : { type: "event", turn: this.turn, messageType };
    this.deps.writer.write(frame);
  }

  ask(question: string, options: AskOptions = {}): Promise<Json> {
    const id = crypto.randomUUID();
    const content: Record<string, unknown> = { ...options.details, request_id: id, question };
    if (options.choices) content.choices = options.choices;
    return this.deps.requests.wait(id, this.signal, options.timeoutMs, () => this.send("tool.question_requested", content));
  }

  requestPermission(request: PermissionRequest): Promise<Json> {
    const id = crypto.randomUUID();
    return this.deps.requests.wait(id, this.signal, undefined, () => this.send("tool.permission_requested", { ...request, request_id: id }));
  }

  async schedule(when: number | Date | string, message: Record<string, unknown> = {}): Promise<string> {
    if (!isRecord(message)) throw new TypeError("schedule(when, message): message must be an object");
    const answer = await this.hostCall({ op: "create", when: scheduleWhen(when), message });
    return String((answer.schedule as JsonObject | undefined)?.id ?? "");
  }

  async cancelSchedule(id: string): Promise<boolean> {
    return (await this.hostCall({ op: "cancel", scheduleId: String(id) })).cancelled === true;
  }

  async schedules(): Promise<ScheduleInfo[]> {
    return (await this.hostCall({ op: "list" })).schedules as unknown as ScheduleInfo[];
  }

  /** A `schedule` frame the host answers (`answer` {id, value}); `value.error` is a refusal. */
  private async hostCall(request: Record<string, unknown>): Promise<JsonObject> {
    const id = crypto.randomUUID();
    const value = await this.deps.requests.wait(id, this.signal, HOST_CALL_TIMEOUT_MS, () => this.deps.writer.write({ type: "schedule", id, ...request }));
    if (!isRecord(value)) throw new Error("the host's answer is not an object");
    if (typeof value.error === "string") throw new Error(value.error);
    return value as JsonObject;
  }
}

const HOST_CALL_TIMEOUT_MS = 30_000;

function scheduleWhen(when: number | Date | string): JsonObject {
  if (typeof when === "number") return { delay_ms: when };
  if (when instanceof Date) return { at: when.toISOString() };
  if (typeof when === "string") return { cron: when };
  throw new TypeError("schedule(when): when must be a delay in ms, a Date, or a cron expression");
}
