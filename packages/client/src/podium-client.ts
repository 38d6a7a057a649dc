/**
 * PodiumClient: the five operations of the platform-services contract (createInstance, connect,
 * isAlive, stopInstance, and the file API) over Podium's REST + WebSocket API.
 *
 * Resilience:
 * - createInstance runs behind a circuit breaker (opens after 5 consecutive failed calls, half-open
 *   after 30 s, the first success closes) wrapped around an exponential retry (500 ms, 1 s, 2 s, 4 s
 *   with jitter, 3 retries). One failed call is one breaker failure, whatever its retries did.
 *   Retried and counted: network errors, timeouts, HTTP 5xx, 429 and 408. Not retried and not
 *   counted: other 4xx (the request itself is wrong), the caller's abort.
 * - stopInstance retries the same way (DELETE is idempotent; 404 is success), without the breaker.
 * - isAlive is a single probe with its own timeout; it never throws.
 * - File calls are single requests with a 15 s timeout.
 * - createInstance with a `sessionId`: concurrent activations of one session share one POST.
 */
import type { CompiledClientOptions, PodiumClientOptions } from "./client-options.js";
import { compileClientOptions, type Env } from "./client-options.js";
import { ConsecutiveBreaker, type BreakerState } from "./consecutive-breaker.js";
import { httpError, httpRequest, protocolError, type HttpRequest } from "./http-request.js";
import { isTransient, PodiumConnectionError } from "./podium-connection-error.js";
import { openConnection, type PodiumConnection } from "./podium-connection.js";
import { withRetry } from "./retry.js";
import { SingleFlight } from "./single-flight.js";
import { toFileContent, toFileEntries, toIterations, type FileContent, type FileEntry, type IterationMeta } from "./file-types.js";
import { toLogPage, toStateView, type LogPage, type StateView } from "./history-types.js";
import { toInstanceInfo, toInstanceList, toMessagePage, toSentMessage, type InstanceInfo, type MessagePage, type SentMessage, type MultitaskStrategy } from "./instance-types.js";

export interface CreateInstanceParams {
  agentType: string;
  agentId?: string;
  secrets?: Record<string, string>;
  environment?: Record<string, string>;
  /** Default `${agentType}:1.0.0@local`. */
  deploymentId?: string;
  /** Deduplicates concurrent activations of one session: they share one in-flight request. */
  sessionId?: string;
}

export interface ConnectOptions extends CallOptions {
  /**
   * Replay the updates after this seq before going live (`?after_seq=N`); 0 replays the whole
   * history. Without it the stream starts with what happens after the connection opens.
   */
  afterSeq?: number;
}

export interface CreatedInstance {
  instanceId: string;
  deploymentId: string;
  /** The durable agent the instance runs (present when the server says; Podium always does). */
  agentId?: string;
}

export interface ListMessagesOptions extends CallOptions {
  /** Start after this seq (default 0: from the beginning). */
  afterSeq?: number;
  /** Page size (server default 100, at most 1000). */
  limit?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface GetStateOptions extends CallOptions {
  /** The state as it was at this version, with the patch that made it (while the history keeps it). */
  at?: number;
  /** Only the patches after this version (not with `at`). */
  since?: number;
}

export interface ListLogsOptions extends CallOptions {
  /** Start after this log id (default 0: from the oldest kept). */
  after?: number;
  /** Page size (server default 100, at most 1000). */
  limit?: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function firstString(record: Record<string, unknown>, keys: readonly string[]): string | undefined {
  for (const key of keys) {
    const value = record[key];
    if (typeof value === "string" && value.length > 0) return value;
  }
  return undefined;
}

function requireText(value: string, name: string): string {
  if (typeof value !== "string" || value.length === 0) throw new TypeError(`${name} must be a non-empty string`);
  return value;
}

function requestText(value: string): string {
  return requireText(value, "requestId");
}

/** `?name=value&…` of the non-negative integers given (empty when none is); RangeError for others. */
function pageQuery(params: Record<string, number | undefined>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
    query.set(name, String(value));
  }
  const qs = query.toString();
  return qs ? `?${qs}` : "";
}

/** A workspace path as URL path segments, each percent-encoded ("a b/c.ts" -> "a%20b/c.ts"). */
export function encodeFilePath(path: string): string {
  const segments = requireText(path, "path")
    .split("/")
    .filter((s) => s.length > 0);
  if (segments.length === 0) throw new TypeError("path must name a file");
  return segments.map(encodeURIComponent).join("/");
}

export class PodiumClient {
  readonly options: CompiledClientOptions;
  private readonly breaker: ConsecutiveBreaker;
  private readonly activations = new SingleFlight<CreatedInstance>();
  private readonly connections = new Set<PodiumConnection>();

  constructor(options: PodiumClientOptions = {}, env?: Env) {
    this.options = compileClientOptions(options, env);
    this.breaker = new ConsecutiveBreaker({
      name: "podium.createInstance",
      failureThreshold: this.options.breaker.failureThreshold,
      cooldownMs: this.options.breaker.cooldownMs,
      countsAsFailure: (error) => isTransient(error) || (error instanceof PodiumConnectionError && error.kind === "protocol"),
    });
  }

  /** State of the createInstance circuit breaker. */
  get breakerState(): BreakerState {
    return this.breaker.state;
  }

  private api(path: string): string {
    return `${this.options.url}/api/v1${path}`;
  }

  private instancePath(instanceId: string): string {
    return `/instances/${encodeURIComponent(requireText(instanceId, "instanceId"))}`;
  }

  private request(request: Omit<HttpRequest, "apiKey">) {
    return httpRequest({ ...request, apiKey: this.options.apiKey });
  }

  /** POST /api/v1/instances. Resolves once Podium reports the instance created. */
  async createInstance(params: CreateInstanceParams, options: CallOptions = {}): Promise<CreatedInstance> {
    const agentType = requireText(params.agentType, "agentType");
    const body: Record<string, unknown> = { deployment_id: params.deploymentId ?? `${agentType}:1.0.0@local` };
    if (params.agentId !== undefined) body.agent_id = params.agentId;
    body.secrets = params.secrets ?? {};
    body.environment = params.environment ?? {};
    const what = "createInstance";
    const run = (signal: AbortSignal | undefined) => this.breaker.fire(() => withRetry(() => this.postInstance(body, signal), { what, isRetryable: isTransient, signal }, this.options));
    if (params.sessionId !== undefined) return this.activations.run(params.sessionId, run, options.signal, what);
    return run(options.signal);
  }

  private async postInstance(body: Record<string, unknown>, signal: AbortSignal | undefined): Promise<CreatedInstance> {
    const what = "createInstance";
    const response = await this.request({ method: "POST", url: this.api("/instances"), body, timeoutMs: this.options.createTimeoutMs, signal, what });
    if (!response.ok) throw httpError(what, response);
    const json = response.json;
    const record = isRecord(json) ? (isRecord(json.instance) ? json.instance : json) : undefined;
    const instanceId = record && firstString(record, ["instance_id", "instanceId"]);
    if (!record || !instanceId) throw protocolError(what, "no instance_id in the answer");
    const created: CreatedInstance = { instanceId, deploymentId: firstString(record, ["deployment_id", "deploymentId"]) ?? String(body.deployment_id) };
    const agentId = firstString(record, ["agent_id", "agentId"]);
    if (agentId !== undefined) created.agentId = agentId;
    return created;
  }

  /** Opens the instance's event stream: ws(s)://{url}/api/v1/instances/{id}/connect. */
  async connect(instanceId: string, options: ConnectOptions = {}): Promise<PodiumConnection> {
    const url = new URL(this.api(`${this.instancePath(instanceId)}/connect`));
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (options.afterSeq !== undefined) {
      if (!Number.isSafeInteger(options.afterSeq) || options.afterSeq < 0) throw new RangeError(`afterSeq must be a non-negative integer, got ${options.afterSeq}`);
      url.searchParams.set("after_seq", String(options.afterSeq));
    }
    const connection = await openConnection({
      instanceId,
      url: url.toString(),
      apiKey: this.options.apiKey,
      handshakeTimeoutMs: this.options.connectTimeoutMs,
      signal: options.signal,
      onClosed: () => this.connections.delete(connection),
    });
    this.connections.add(connection);
    return connection;
  }

  /** GET /api/v1/instances/{id} within isAliveTimeoutMs: true on a 2xx, false on anything else. */
  async isAlive(instanceId: string, options: CallOptions = {}): Promise<boolean> {
    try {
      const response = await this.request({
        method: "GET",
        url: this.api(this.instancePath(instanceId)),
        timeoutMs: this.options.isAliveTimeoutMs,
        signal: options.signal,
        what: "isAlive",
      });
      return response.ok;
    } catch {
      return false;
    }
  }

  /** DELETE /api/v1/instances/{id}; a 404 counts as success (already reclaimed). */
  async stopInstance(instanceId: string, options: CallOptions = {}): Promise<void> {
    const url = this.api(this.instancePath(instanceId));
    const what = "stopInstance";
    return withRetry(
      async () => {
        const response = await this.request({ method: "DELETE", url, timeoutMs: this.options.stopTimeoutMs, signal: options.signal, what });
        if (!response.ok && response.status !== 404) throw httpError(what, response);
      },
      { what, isRetryable: isTransient, signal: options.signal },
      this.options,
    );
  }

  private async getFile(what: string, path: string, signal: AbortSignal | undefined): Promise<unknown> {
    const response = await this.request({ method: "GET", url: this.api(path), timeoutMs: this.options.fileTimeoutMs, signal, what });
    if (!response.ok) throw httpError(what, response);
    return response.json;
  }

  /** GET /api/v1/instances/{id}/files?path={path}&depth={depth} (each only when given). */
  async listFiles(instanceId: string, path?: string, depth?: number, options: CallOptions = {}): Promise<FileEntry[]> {
    const query = new URLSearchParams();
    if (path !== undefined) query.set("path", path);
    if (depth !== undefined) {
      if (!Number.isSafeInteger(depth) || depth < 0) throw new RangeError(`depth must be a non-negative integer, got ${depth}`);
      query.set("depth", String(depth));
    }
    const qs = query.toString();
    const body = await this.getFile("listFiles", `${this.instancePath(instanceId)}/files${qs ? `?${qs}` : ""}`, options.signal);
    return toFileEntries(body, "listFiles");
  }

  /** GET /api/v1/instances/{id}/files/{path} */
  async readFile(instanceId: string, path: string, options: CallOptions = {}): Promise<FileContent> {
    const body = await this.getFile("readFile", `${this.instancePath(instanceId)}/files/${encodeFilePath(path)}`, options.signal);
    return toFileContent(body, "readFile");
  }

  /** GET /api/v1/instances/{id}/files/{path}/history (oldest first). */
  async fileHistory(instanceId: string, path: string, options: CallOptions = {}): Promise<IterationMeta[]> {
    const body = await this.getFile("fileHistory", `${this.instancePath(instanceId)}/files/${encodeFilePath(path)}/history`, options.signal);
    return toIterations(body, "fileHistory");
  }

  /** GET /api/v1/instances/{id}/files/{path}/at/{iteration} */
  async fileAtIteration(instanceId: string, path: string, iteration: number, options: CallOptions = {}): Promise<FileContent> {
    if (!Number.isSafeInteger(iteration) || iteration < 0) throw new RangeError(`iteration must be a non-negative integer, got ${iteration}`);
    const body = await this.getFile("fileAtIteration", `${this.instancePath(instanceId)}/files/${encodeFilePath(path)}/at/${iteration}`, options.signal);
    return toFileContent(body, "fileAtIteration");
  }

  private async call(method: "GET" | "POST", what: string, path: string, signal: AbortSignal | undefined, body?: unknown): Promise<unknown> {
    const response = await this.request({ method, url: this.api(path), timeoutMs: this.options.requestTimeoutMs, signal, what, ...(body !== undefined ? { body } : {}) });
    if (!response.ok) throw httpError(what, response);
    return response.json;
  }

  /** GET /api/v1/instances/{id}: the instance, or an error (404 once it has ended). */
  async getInstance(instanceId: string, options: CallOptions = {}): Promise<InstanceInfo> {
    return toInstanceInfo(await this.call("GET", "getInstance", this.instancePath(instanceId), options.signal), "getInstance");
  }

  /** GET /api/v1/instances?agent_id=&deployment_id=: the live instances matching the filter. */
  async listInstances(filter: { agentId?: string; deploymentId?: string } = {}, options: CallOptions = {}): Promise<InstanceInfo[]> {
    const query = new URLSearchParams();
    if (filter.agentId) query.set("agent_id", filter.agentId);
    if (filter.deploymentId) query.set("deployment_id", filter.deploymentId);
    const qs = query.toString();
    return toInstanceList(await this.call("GET", "listInstances", `/instances${qs ? `?${qs}` : ""}`, options.signal), "listInstances");
  }

  /**
   * POST /api/v1/instances/{id}/messages: queues `content` (an object with `text`, plus any metadata)
   * as a turn. Unlike a connection's sendMessage it answers with the message's seq and turn, so the
   * caller can follow exactly that turn (`connect(id, {afterSeq: seq})`). Not retried.
   * `multitaskStrategy`: what it does while the agent is busy; "reject" fails (kind "http", status 409,
   * code "aborted"), "interrupt" cancels what runs and waits and runs next (see `cancelledTurns`).
   */
  async postMessage(instanceId: string, content: Record<string, unknown>, options: CallOptions & { multitaskStrategy?: MultitaskStrategy } = {}): Promise<SentMessage> {
    const body = { content, ...(options.multitaskStrategy ? { multitask_strategy: options.multitaskStrategy } : {}) };
    return toSentMessage(await this.call("POST", "postMessage", `${this.instancePath(instanceId)}/messages`, options.signal, body), "postMessage");
  }

  /** POST /api/v1/instances/{id}/cancel: cancels the running turn (only `turn`, when given). */
  async cancelTurn(instanceId: string, turn?: number, options: CallOptions = {}): Promise<{ cancelled: boolean; turn: number }> {
    const body = await this.call("POST", "cancelTurn", `${this.instancePath(instanceId)}/cancel`, options.signal, turn === undefined ? {} : { turn });
    const record = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
    return { cancelled: record.cancelled === true, turn: typeof record.turn === "number" ? record.turn : 0 };
  }

  /** POST /api/v1/instances/{id}/answers: answers a question / permission request of the agent. */
  async answer(instanceId: string, requestId: string, value: unknown, options: CallOptions = {}): Promise<void> {
    await this.call("POST", "answer", `${this.instancePath(instanceId)}/answers`, options.signal, { request_id: requestText(requestId), value: value ?? null });
  }

  /** GET /api/v1/instances/{id}/messages: one page of the agent's message history (inbound and outbound). */
  async listMessages(instanceId: string, options: ListMessagesOptions = {}): Promise<MessagePage> {
    const query = pageQuery({ after_seq: options.afterSeq, limit: options.limit });
    return toMessagePage(await this.call("GET", "listMessages", `${this.instancePath(instanceId)}/messages${query}`, options.signal), "listMessages");
  }

  /** GET /api/v1/instances/{id}/state: the agent's state now, at an earlier version (`at`), or the patches since one. */
  async getState(instanceId: string, options: GetStateOptions = {}): Promise<StateView> {
    const query = pageQuery({ at: options.at, since: options.since });
    return toStateView(await this.call("GET", "getState", `${this.instancePath(instanceId)}/state${query}`, options.signal), "getState");
  }

  /** GET /api/v1/instances/{id}/logs: one page of the agent's log (its own lines, stdout/stderr and the platform's). */
  async listLogs(instanceId: string, options: ListLogsOptions = {}): Promise<LogPage> {
    const query = pageQuery({ after: options.after, limit: options.limit });
    return toLogPage(await this.call("GET", "listLogs", `${this.instancePath(instanceId)}/logs${query}`, options.signal), "listLogs");
  }

  /**
   * Whether Podium knows the agent (it has a workspace): GET /api/v1/agents/{id}/files. True on a
   * 2xx, false on 404; anything else (e.g. 501 when the server has no file API) is an error.
   */
  async agentExists(agentId: string, options: CallOptions = {}): Promise<boolean> {
    const what = "agentExists";
    const url = this.api(`/agents/${encodeURIComponent(requireText(agentId, "agentId"))}/files?depth=1`);
    const response = await this.request({ method: "GET", url, timeoutMs: this.options.requestTimeoutMs, signal: options.signal, what });
    if (response.ok) return true;
    if (response.status === 404) return false;
    throw httpError(what, response);
  }

  /** Closes every open connection and stops the breaker's timer. The client is unusable afterwards. */
  async close(): Promise<void> {
    await Promise.all([...this.connections].map((connection) => connection.close()));
    this.breaker.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
