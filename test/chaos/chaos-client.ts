/**
 * One client of the chaos run: it converses with its own named agent through the gateways as an
 * application following docs/api.md would. It creates the agent (or finds its live instance), reads the
 * stream on `/connect` with `after_seq` = the last seq it saw, and sends one message at a time with
 * `POST …/messages` (202 = acknowledged: seq and turn), then waits for that turn's `turn.done` on the
 * stream, across whatever dies meanwhile: a `terminated` or a broken socket makes it create the agent
 * again (the platform resumes it) and reconnect with `after_seq`. It records what it was acknowledged
 * and every event each of its stream sessions received, for the checks in chaos-check.ts.
 */
import { WebSocket } from "ws";
import type { JsonObject } from "../../services/shared/json.js";
import { restCall, type RestResult } from "../helpers/cluster-processes.js";

export interface StreamSession {
  instanceId: string;
  afterSeq: number;
  /** Seqs of the events received, in arrival order (not the gateway's synthesized `terminated`). */
  seqs: number[];
}

export interface AckedMessage {
  turn: number;
  text: string;
  at: number;
}

export interface ChaosClientOptions {
  agentId: string;
  deploymentId: string;
  /** Gateway URLs; the client starts with `gateways[index % length]` and moves on when one fails. */
  gateways: string[];
  index: number;
  apiKey: string;
  /** The agent's work per turn (durable-ts `delay_ms`). */
  delayMs: number;
  /** How long to wait for one turn to end before giving up on it (the checks then count it). */
  turnTimeoutMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const RETRY_STATUSES = new Set([0, 404, 409, 429, 500, 502, 503, 504]);

export class ChaosClient {
  readonly acked: AckedMessage[] = [];
  readonly sessions: StreamSession[] = [];
  /** turn -> ok, from the turn.done events seen on the stream. */
  readonly ended = new Map<number, boolean>();
  readonly instances = new Set<string>();
  /** Requests answered with something else than success (each retried), by status. */
  readonly refusals = new Map<number, number>();
  turnsTimedOut = 0;
  /** The longest time without progress (an acknowledgement or a turn's end), in ms. */
  longestStallMs = 0;
  private lastProgress = Date.now();
  private gateway: number;
  private instanceId: string | undefined;
  private ws: WebSocket | undefined;
  private lastSeq = 0;
  private wake: (() => void) | undefined;

  constructor(private readonly options: ChaosClientOptions) {
    this.gateway = options.index % options.gateways.length;
  }

  /** Converses until `signal` aborts, then until its last acknowledged message ended (or `drainMs` passed). */
  async run(signal: AbortSignal, drainMs: number): Promise<void> {
    let pending: number | undefined;
    let sent = 0;
    let drainUntil = Infinity;
    signal.addEventListener("abort", () => (drainUntil = Date.now() + drainMs), { once: true });
    while (Date.now() < drainUntil && !(signal.aborted && pending === undefined)) {
      try {
        await this.ensureInstance();
        this.ensureStream();
        if (pending === undefined) {
          const text = `${this.options.agentId}-m${++sent}`;
          pending = await this.send(text);
          this.acked.push({ turn: pending, text, at: Date.now() });
          this.progress();
        }
        if (await this.waitForEnd(pending, signal.aborted ? Math.max(0, drainUntil - Date.now()) : this.options.turnTimeoutMs)) {
          pending = undefined;
          this.progress();
        }
      } catch {
        await sleep(150 + Math.random() * 200);
      }
    }
    if (pending !== undefined && !this.ended.has(pending)) this.turnsTimedOut++;
    this.closeStream();
  }

  get agentId(): string {
    return this.options.agentId;
  }

  /** The agent's live instance (GET /api/v1/agents/{id}), created if it has none. */
  async liveInstance(): Promise<string> {
    const agent = await this.api("GET", `/api/v1/agents/${this.options.agentId}`);
    if (agent.status === 200 && typeof agent.json.instance_id === "string") return agent.json.instance_id;
    this.instanceId = undefined;
    return this.ensureInstance();
  }

  /** A REST call through the current gateway; a failed connection moves to the next gateway. */
  async api(method: string, urlPath: string, body?: unknown): Promise<RestResult> {
    const base = this.options.gateways[this.gateway] as string;
    try {
      return await restCall(base, method, urlPath, body, this.options.apiKey);
    } catch {
      this.gateway = (this.gateway + 1) % this.options.gateways.length;
      return { status: 0, json: {} };
    }
  }

  private refused(res: RestResult, what: string): never {
    this.refusals.set(res.status, (this.refusals.get(res.status) ?? 0) + 1);
    if (!RETRY_STATUSES.has(res.status)) throw new Error(`${what}: unexpected ${res.status} ${JSON.stringify(res.json)}`);
    throw new Error(`${what}: ${res.status}`);
  }

  private async ensureInstance(): Promise<string> {
    if (this.instanceId) return this.instanceId;
    const created = await this.api("POST", "/api/v1/instances", { deployment_id: this.options.deploymentId, agent_id: this.options.agentId });
    let id = created.status === 201 ? String(created.json.instance_id) : undefined;
    if (created.status === 409) {
      // A live instance already (this client's earlier create went through after all): use it.
      const agent = await this.api("GET", `/api/v1/agents/${this.options.agentId}`);
      if (agent.status === 200 && typeof agent.json.instance_id === "string") id = agent.json.instance_id;
    }
    if (!id) this.refused(created, `create ${this.options.agentId}`);
    this.instanceId = id;
    this.instances.add(id);
    return id;
  }

  private ensureStream(): void {
    if (this.ws || !this.instanceId) return;
    const base = (this.options.gateways[this.gateway] as string).replace(/^http/, "ws");
    const instanceId = this.instanceId;
    const ws = new WebSocket(`${base}/api/v1/instances/${instanceId}/connect?api_key=${this.options.apiKey}&after_seq=${this.lastSeq}`);
    const session: StreamSession = { instanceId, afterSeq: this.lastSeq, seqs: [] };
    this.sessions.push(session);
    this.ws = ws;
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as JsonObject;
      const content = (frame.content ?? {}) as JsonObject;
      // A `terminated` that is not in the log (the gateway's, its coordinator gone; a fenced instance's)
      // repeats the seq of the last event delivered (docs/api.md).
      const repeated = frame.messageType === "terminated" && typeof frame.seq === "number" && frame.seq <= this.lastSeq;
      if (typeof frame.seq === "number" && !repeated) {
        session.seqs.push(frame.seq);
        this.lastSeq = Math.max(this.lastSeq, frame.seq);
      }
      if (frame.messageType === "turn.done" && typeof content.turn === "number") this.ended.set(content.turn, content.ok === true);
      if (frame.messageType === "terminated") {
        if (this.instanceId === instanceId) this.instanceId = undefined;
        ws.close();
        drop();
      }
      this.wake?.();
    });
    const drop = (): void => {
      if (this.ws === ws) {
        this.ws = undefined;
      }
      this.wake?.();
    };
    ws.on("close", drop);
    ws.on("error", drop);
  }

  private closeStream(): void {
    this.ws?.terminate();
    this.ws = undefined;
  }

  private async send(text: string): Promise<number> {
    const instanceId = this.instanceId as string;
    const res = await this.api("POST", `/api/v1/instances/${instanceId}/messages`, { content: { text, delay_ms: this.options.delayMs } });
    if (res.status === 202) return Number(res.json.turn);
    if (res.status === 404 || res.status === 503) this.forget(instanceId);
    return this.refused(res, `send to ${instanceId}`);
  }

  /** True once `turn` ended; false when the stream broke or the instance ended first (or time ran out). */
  private async waitForEnd(turn: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const ws = this.ws;
    while (!this.ended.has(turn)) {
      if (!this.instanceId || this.ws !== ws || !ws) return false;
      const left = deadline - Date.now();
      if (left <= 0) {
        // The instance answers nothing about this turn: look again from scratch (a new stream, maybe a new instance).
        this.forget(this.instanceId);
        return false;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return true;
  }

  private forget(instanceId: string): void {
    if (this.instanceId === instanceId) this.instanceId = undefined;
    this.closeStream();
  }

  private progress(): void {
    const now = Date.now();
    this.longestStallMs = Math.max(this.longestStallMs, now - this.lastProgress);
    this.lastProgress = now;
  }
}
