/**
 * An in-memory agent process for unit tests of the coordinator core: it speaks the agent protocol
 * (services/coordinator/agent-protocol.ts) through the AgentProcessHandle an instance uses, with no OS
 * process, runner or sandbox. A message's `content.fake` scripts its turn (FakeTurn); FakeAgentOptions
 * script its start and stop. Frames reach the host on a later tick, in batches, as they do through a pipe,
 * and every frame written before an exit is delivered before `exited` settles.
 */
import type { AgentProcessFactory } from "../../services/coordinator/agent-instance-options.js";
import type { AgentProcessHandle, AgentProcessHandlers, ProcessExitInfo } from "../../services/coordinator/agent-process.js";
import { AGENT_PROTOCOL_VERSION, type AgentToHost, type HostToAgent, type InitFrame } from "../../services/coordinator/agent-protocol.js";
import type { JsonObject } from "../../services/shared/json.js";

/**
 * What a message's `content.fake` makes the agent do with its turn:
 * - "echo" (also without `fake`): an `echo` event with content.text, a state_patch counting turns, turn_done;
 * - "hold": a `started` event, then nothing until cancelled (turn_done) or release(turn);
 * - "ignore-cancel": a `started` event, then nothing at all (only a kill ends it);
 * - "fail": turn_done with an error;
 * - "crash": a `started` event, then exit code 3;
 * - "ask": an `ask` event with request_id `ask-<turn>`; the answer ends the turn (an `answered` event);
 * - "flood": `content.count` `chunk` events, then turn_done.
 */
export type FakeTurn = "echo" | "hold" | "ignore-cancel" | "fail" | "crash" | "ask" | "flood";

export interface FakeAgentOptions {
  /** On `init`: "ready" (default), "fatal" (a fatal frame, exit 1), "exit" (a stderr line, exit 1), "hang" (never ready). */
  start?: "ready" | "fatal" | "exit" | "hang";
  /** The protocol its `ready` names (default the coordinator's). */
  protocol?: number;
  /** On `stop` (or EOF): "stop" (default: `stopped`, exit 0), "ignore" (only the grace's SIGKILL ends it). */
  stop?: "stop" | "ignore";
}

let nextPid = 4_000_000;

export class FakeAgentProcess implements AgentProcessHandle {
  readonly pid = nextPid++;
  readonly exited: Promise<ProcessExitInfo>;
  /** Every frame the host sent, `init` first. */
  readonly received: HostToAgent[] = [];
  init: InitFrame | undefined;
  private exitInfo: ProcessExitInfo | undefined;
  private resolveExit!: (info: ProcessExitInfo) => void;
  /** Turns begun and not ended, with what they do. */
  private readonly running = new Map<number, FakeTurn>();
  private readonly outbox: AgentToHost[] = [];
  private count = 0;
  private stopping = false;

  constructor(
    private readonly handlers: AgentProcessHandlers,
    private readonly options: FakeAgentOptions = {},
  ) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** Turns running now (begun, not ended). */
  get turns(): number[] {
    return [...this.running.keys()];
  }

  send(frame: HostToAgent): boolean {
    if (!this.alive) return false;
    this.received.push(frame);
    setImmediate(() => this.receive(frame));
    return true;
  }

  write(line: readonly Uint8Array[]): boolean {
    return this.send(JSON.parse(Buffer.concat(line.map((part) => Buffer.from(part))).toString("utf8")) as HostToAgent);
  }

  endInput(): void {
    if (this.alive) setImmediate(() => this.onStop());
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.exit({ code: null, signal });
  }

  /** Exits on its own with `code` (a crash when not 0). */
  exitWith(code = 1): void {
    this.exit({ code, signal: null });
  }

  /** Ends a held turn as the SDK does when its handler returns: turn_done (once it began: after its `started` event). */
  release(turn: number): void {
    if (this.running.delete(turn)) this.emit({ type: "turn_done", turn });
  }

  /** Writes frames to the host (delivered together on a later tick). */
  emit(...frames: AgentToHost[]): void {
    if (!this.alive) return;
    if (this.outbox.length === 0) setImmediate(() => this.flush());
    this.outbox.push(...frames);
  }

  private flush(): void {
    const batch = this.outbox.splice(0);
    if (batch.length > 0) this.handlers.onFrames(batch);
  }

  private exit(info: ProcessExitInfo): void {
    if (!this.alive) return;
    this.exitInfo = info;
    setImmediate(() => {
      this.flush(); // what it wrote comes before its exit
      this.resolveExit(info);
    });
  }

  private receive(frame: HostToAgent): void {
    if (!this.alive) return;
    switch (frame.type) {
      case "init":
        return this.onInit(frame);
      case "message":
        return this.onMessage(frame.turn, frame.content);
      case "cancel":
        if (this.running.get(frame.turn) === "hold") this.release(frame.turn);
        return;
      case "answer": {
        const turn = Number(/^ask-(\d+)$/.exec(frame.id)?.[1]);
        if (this.running.get(turn) !== "ask") return;
        this.running.delete(turn);
        this.emit({ type: "event", turn, messageType: "answered", content: { value: frame.value } }, { type: "turn_done", turn });
        return;
      }
      case "stop":
        return this.onStop();
    }
  }

  private onInit(frame: InitFrame): void {
    this.init = frame;
    const count = frame.state.count;
    this.count = typeof count === "number" ? count : 0;
    switch (this.options.start ?? "ready") {
      case "fatal":
        this.emit({ type: "fatal", error: { message: "fake agent cannot load its module" } });
        return this.exitWith(1);
      case "exit":
        this.handlers.onOutput("stderr", "fake agent: cannot start");
        return this.exitWith(1);
      case "hang":
        return;
      case "ready":
        // A new agent reports its initial state (turn 0), as the SDKs do, before `ready`.
        if (frame.stateVersion === 0) this.emit({ type: "state_patch", turn: 0, ops: [{ op: "replace", path: "", value: { count: 0 } }] });
        this.emit({ type: "ready", protocol: this.options.protocol ?? AGENT_PROTOCOL_VERSION, runtime: "typescript", sdk: "fake/1.0.0" });
    }
  }

  private onMessage(turn: number, content: JsonObject): void {
    const script = typeof content.fake === "string" ? (content.fake as FakeTurn) : "echo";
    switch (script) {
      case "echo":
        this.count++;
        this.emit(
          { type: "event", turn, messageType: "echo", content: { text: typeof content.text === "string" ? content.text : "" } },
          { type: "state_patch", turn, ops: [{ op: "replace", path: "/count", value: this.count }] },
          { type: "turn_done", turn },
        );
        return;
      case "hold":
      case "ignore-cancel":
        this.running.set(turn, script);
        this.emit({ type: "event", turn, messageType: "started", content: {} });
        return;
      case "fail":
        this.emit({ type: "turn_done", turn, error: { message: "fake agent failed its turn" } });
        return;
      case "crash":
        this.emit({ type: "event", turn, messageType: "started", content: {} });
        return this.exitWith(3);
      case "ask":
        this.running.set(turn, "ask");
        this.emit({ type: "event", turn, messageType: "ask", content: { request_id: `ask-${turn}`, question: "go on?" } });
        return;
      case "flood": {
        const n = typeof content.count === "number" ? content.count : 10;
        for (let i = 0; i < n; i++) this.emit({ type: "event", turn, messageType: "chunk", content: { i } });
        this.emit({ type: "turn_done", turn });
        return;
      }
    }
  }

  private onStop(): void {
    if (this.stopping || !this.alive) return;
    this.stopping = true;
    if (this.options.stop === "ignore") return;
    this.emit({ type: "stopped" });
    this.exitWith(0);
  }
}

/** A process factory that makes fakes; each one made is in `processes`, the newest last. */
export interface FakeProcessFactory {
  readonly factory: AgentProcessFactory;
  readonly processes: FakeAgentProcess[];
  /** The newest process (throws when none was made). */
  last(): FakeAgentProcess;
  /** Options of the processes made from now on. */
  options: FakeAgentOptions;
}

export function fakeProcessFactory(options: FakeAgentOptions = {}): FakeProcessFactory {
  const processes: FakeAgentProcess[] = [];
  const made: FakeProcessFactory = {
    options,
    processes,
    factory: (_instance, handlers, step) => {
      step("fake process made");
      const process = new FakeAgentProcess(handlers, made.options);
      processes.push(process);
      return process;
    },
    last: () => {
      const process = processes[processes.length - 1];
      if (!process) throw new Error("no fake agent process was made");
      return process;
    },
  };
  return made;
}
