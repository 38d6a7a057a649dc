/**
 * The runner's life cycle (services/coordinator/agent-protocol.ts): init -> load state -> onStart
 * -> ready -> one turn at a time -> stop/EOF -> onStop (onHibernate for a hibernating instance) -> stopped. Host frames are read
 * concurrently with a running turn, so cancel / answer / stop take effect while a handler awaits.
 */
import { TurnContext, writeLog } from "./agent-context.js";
import type { Agent, AgentInfo } from "./agent-types.js";
import { FdLineReader, FrameChannelClosedError, type FrameWriter } from "./frame-io.js";
import { PendingRequests } from "./pending-requests.js";
import { parseHostFrame, ProtocolMismatchError, type HostFrame, type InitFrame } from "./host-frames.js";
import { AGENT_PROTOCOL_VERSION, type AgentError, type AgentToHost, type MessageFrame } from "./protocol.gen.js";
import { StateTracker } from "./tracked-state.js";

export const SDK_VERSION = "podium-ts/0.1.0";
const EOF_GRACE_MS = 5000;
/** A stop that has not finished by graceMs + this exits the process itself. */
const WATCHDOG_SLACK_MS = 1000;

export interface AgentRuntimeOptions {
  /** Loads the entry module's agent (rejects when it fails to import or has no onMessage). */
  load: (init: InitFrame) => Promise<Agent>;
  /** File descriptor of host -> agent frames (0). */
  inputFd: number;
  writer: FrameWriter;
  exit: (code: number) => void;
  /** Where a fatal error is also reported for the log (default: stderr). */
  stderr?: (text: string) => void;
}

type Queued = MessageFrame;

interface RunningTurn {
  turn: number;
  controller: AbortController;
  done: Promise<void>;
}

/** What a handler threw, as `turn_done.error` / `fatal.error` carry it. */
export type AgentErrorInfo = AgentError;

export function toAgentError(error: unknown): AgentErrorInfo {
  if (error instanceof Error) return error.stack ? { message: error.message || error.name, stack: error.stack } : { message: error.message || error.name };
  if (typeof error === "string") return { message: error };
  try {
    return { message: JSON.stringify(error) ?? String(error) };
  } catch {
    return { message: String(error) };
  }
}

export class AgentRuntime {
  private loading: Promise<Agent> = new Promise(() => undefined);
  private readonly requests = new PendingRequests();
  private reader: FdLineReader | undefined;
  private agent: Agent | undefined;
  private info: AgentInfo | undefined;
  private tracker: StateTracker | undefined;
  private initSeen = false;
  private ready = false;
  private stopping = false;
  private lastTurn = 0;
  private current: RunningTurn | undefined;
  private readonly queue: Queued[] = [];

  constructor(private readonly options: AgentRuntimeOptions) {}

  start(): void {
    this.reader = new FdLineReader(
      this.options.inputFd,
      (line) => this.onLine(line),
      () => this.requestStop(EOF_GRACE_MS),
    );
    this.reader.start(true);
  }

  private get writer(): FrameWriter {
    return this.options.writer;
  }

  /** The frames the runtime itself writes, typed by the protocol schema. */
  private writeFrame(frame: AgentToHost): void {
    this.writer.write(frame);
  }

  /** Writes a frame; a closed channel means the host is gone, so the process ends. */
  private guard(write: () => void): void {
    try {
      write();
    } catch (error) {
      if (error instanceof FrameChannelClosedError) this.options.exit(1);
      throw error;
    }
  }

  /** Handles one line from the host as if read from `inputFd` (start() feeds it; a warm runner's rehearsal too). */
  receive(line: string): void {
    this.onLine(line);
  }

  private onLine(line: string): void {
    let frame: HostFrame;
    try {
      frame = parseHostFrame(line, SDK_VERSION);
    } catch (error) {
      // A host of another protocol version: nothing this runner would do can be trusted to mean the same.
      if (error instanceof ProtocolMismatchError && !this.initSeen) {
        this.initSeen = true;
        this.fatal(error);
        return;
      }
      this.guard(() => writeLog(this.writer, "warn", [`dropped host frame: ${(error as Error).message}`]));
      return;
    }
    switch (frame.type) {
      case "init":
        if (this.initSeen) return;
        this.initSeen = true;
        // environment + secrets reach the agent only here, inside its sandbox, before its module runs
        // (module-level code may read process.env); never through the environment of a host process.
        // A warm runner was spawned before its deployment was known: the platform's variable comes from init.
        if (frame.deploymentId) process.env.PODIUM_DEPLOYMENT_ID ??= frame.deploymentId;
        Object.assign(process.env, frame.env);
        // The host writes `init` right after spawning, so it is waiting on stdin once the runtime is up.
        this.loading = this.options.load(frame);
        this.loading.catch((error: unknown) => this.fatal(error));
        void this.boot(frame);
        return;
      case "message":
        if (this.stopping) return;
        this.queue.push(frame);
        this.pump();
        return;
      case "cancel":
        if (this.current?.turn === frame.turn) this.current.controller.abort(new DOMException("turn cancelled", "AbortError"));
        return;
      case "answer":
        if (!this.requests.answer(frame.id, frame.value)) {
          this.guard(() => writeLog(this.writer, "debug", [`answer for unknown request ${frame.id}`]));
        }
        return;
      case "stop":
        this.requestStop(frame.graceMs, frame.hibernate === true);
        return;
    }
  }

  private fatal(error: unknown): void {
    const detail = toAgentError(error);
    (this.options.stderr ?? ((text: string) => process.stderr.write(text)))(`podium runner: ${detail.stack ?? detail.message}\n`);
    try {
      this.writeFrame({ type: "fatal", error: detail });
    } finally {
      this.options.exit(1);
    }
  }

  private context(turn: number, signal: AbortSignal, message?: MessageFrame): TurnContext {
    const { info, tracker } = this;
    if (!info || !tracker) throw new Error("agent is not initialized");
    return new TurnContext({ info, writer: this.writer, tracker, requests: this.requests }, turn, signal, message?.traceparent, message?.tracestate);
  }

  private flush(turn: number): void {
    const ops = this.tracker?.takeOps();
    if (ops !== undefined) this.guard(() => this.writer.writeJson(`{"type":"state_patch","turn":${turn},"ops":${ops}}`));
  }

  private async boot(init: InitFrame): Promise<void> {
    let agent: Agent;
    try {
      agent = await this.loading;
    } catch {
      return; // already reported as fatal
    }
    try {
      this.agent = agent;
      this.info = { instanceId: init.instanceId, agentId: init.agentId, deploymentId: init.deploymentId, workspace: init.workspace, env: init.env };
      if (init.stateVersion === 0) {
        this.tracker = new StateTracker({});
        const initial = agent.initialState;
        if (initial === undefined)
          this.tracker.replace(init.state, true); // just parsed: ours, no copy
        else this.tracker.replace(typeof initial === "function" ? await (initial as (info: AgentInfo) => unknown)(this.info) : initial);
        this.flush(0);
      } else {
        this.tracker = new StateTracker(init.state);
      }
      if (agent.onStart) {
        await agent.onStart(this.context(0, new AbortController().signal));
        this.flush(0);
      }
      this.guard(() => this.writeFrame({ type: "ready", protocol: AGENT_PROTOCOL_VERSION, runtime: "typescript", sdk: SDK_VERSION }));
    } catch (error) {
      this.fatal(error);
      return;
    }
    this.ready = true;
    this.pump();
  }

  private pump(): void {
    if (!this.ready || this.current || this.stopping) return;
    const next = this.queue.shift();
    if (!next) return;
    const controller = new AbortController();
    const running: RunningTurn = { turn: next.turn, controller, done: Promise.resolve() };
    this.current = running;
    running.done = this.runTurn(next, controller).finally(() => {
      this.current = undefined;
      this.pump();
    });
  }

  private async runTurn(frame: Queued, controller: AbortController): Promise<void> {
    const agent = this.agent as Agent;
    this.lastTurn = frame.turn;
    let error: AgentErrorInfo | undefined;
    try {
      await agent.onMessage(this.context(frame.turn, controller.signal, frame), frame.content);
    } catch (thrown) {
      // A handler that gives up because its turn was cancelled (rethrowing the abort) is not an error.
      if (!(controller.signal.aborted && thrown === controller.signal.reason)) error = toAgentError(thrown);
    }
    this.flush(frame.turn);
    this.guard(() => this.writeFrame(error ? { type: "turn_done", turn: frame.turn, error } : { type: "turn_done", turn: frame.turn }));
  }

  private requestStop(graceMs: number, hibernate = false): void {
    if (this.stopping) return;
    this.stopping = true;
    this.queue.length = 0;
    const reason = new DOMException("agent is stopping", "AbortError");
    this.current?.controller.abort(reason);
    // The host SIGKILLs at graceMs; after EOF there may be no host left to do it.
    setTimeout(() => this.options.exit(1), graceMs + WATCHDOG_SLACK_MS).unref();
    void this.stop(graceMs, reason, hibernate);
  }

  private async stop(graceMs: number, reason: unknown, hibernate: boolean): Promise<void> {
    if (!this.ready) {
      // Not initialized yet (or still in onStart): nothing to run onStop for.
      if (this.initSeen) await this.loading.catch(() => undefined);
      try {
        this.writeFrame({ type: "stopped" });
      } catch {
        // host already gone
      }
      this.options.exit(0);
      return;
    }
    const running = this.current;
    if (running) {
      // Give the cancelled turn half the grace period to end on its own, keeping the rest for onStop.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([running.done, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, graceMs / 2))))]);
      if (timer) clearTimeout(timer);
    }
    this.requests.rejectAll(reason);
    try {
      const hook = hibernate ? this.agent?.onHibernate : this.agent?.onStop;
      if (hook) await hook.call(this.agent, this.context(this.lastTurn, new AbortController().signal));
    } catch (error) {
      this.guard(() => writeLog(this.writer, "error", [`${hibernate ? "onHibernate" : "onStop"} failed:`, error]));
    }
    this.flush(this.lastTurn);
    this.guard(() => this.writeFrame({ type: "stopped" }));
    this.reader?.close();
    this.options.exit(0);
  }
}
