/**
 * Runs one agent the way the coordinator does (runtime-commands.ts argv; cwd = workspace;
 * stdio = [host->agent NDJSON, stdout, stderr, agent->host NDJSON]) and records what comes back.
 * Every agent->host line goes through the coordinator's own parseAgentFrame, so a frame the
 * coordinator would drop shows up in `badLines`. `close()` kills the process group and removes the
 * temporary workspace; tests must call it.
 *
 *   const agent = AgentHarness.spawn({ runtime: "python", entry: "/abs/agent.py" });
 *   await agent.start();                       // init + wait for ready
 *   const turn = await agent.turn(1, { text: "hi" });
 *   await agent.close();
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Readable, Writable } from "node:stream";
import { parseAgentFrame, type AgentToHost, type HostToAgent } from "../../services/coordinator/agent-protocol.js";
import { agentCommand, resolveRuntimeCommands, REPO_ROOT, type AgentRuntime, type RuntimeCommands } from "../../services/coordinator/runtime-commands.js";
import type { Json, JsonObject, JsonPatchOp } from "../../services/shared/json.js";
import { applyPatch } from "../../services/shared/json-patch.js";

export { REPO_ROOT };
export type Runtime = AgentRuntime;
export const RUNTIMES: readonly Runtime[] = ["typescript", "python"];

export interface HarnessOptions {
  runtime: Runtime;
  /** Absolute path of the entry file. */
  entry: string;
  /** Workspace (cwd); default: a fresh temp dir removed by close(). */
  workspace?: string;
  /** Extra environment for the process. */
  env?: Record<string, string>;
  /** argv to run instead of the runtime's own runner (e.g. an installed SDK's `python -m podium_agent entry`). */
  command?: readonly [string, readonly string[]];
}

export type InitFrame = Extract<HostToAgent, { type: "init" }>;
export type EventFrame = Extract<AgentToHost, { type: "event" }>;
export type PatchFrame = Extract<AgentToHost, { type: "state_patch" }>;
export type DoneFrame = Extract<AgentToHost, { type: "turn_done" }>;

export interface TurnResult {
  events: EventFrame[];
  patches: PatchFrame[];
  done: DoneFrame;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

let commands: RuntimeCommands | undefined;
/** Resolved once per test file (python3 may be a slow pyenv shim). */
export function runtimeCommands(): RuntimeCommands {
  commands ??= resolveRuntimeCommands();
  return commands;
}

export class AgentHarness {
  readonly frames: AgentToHost[] = [];
  readonly badLines: string[] = [];
  stdout = "";
  stderr = "";
  readonly exited: Promise<ExitInfo>;
  readonly workspace: string;
  private readonly child: ChildProcess;
  private readonly input: Writable;
  private readonly ownsWorkspace: boolean;
  private exitInfo: ExitInfo | undefined;
  private listeners = new Set<() => void>();

  private constructor(readonly options: HarnessOptions) {
    this.ownsWorkspace = options.workspace === undefined;
    this.workspace = options.workspace ?? fs.mkdtempSync(path.join(os.tmpdir(), "podium-sdk-"));
    const [command, args] = options.command ?? agentCommand(runtimeCommands(), options.runtime, options.entry);
    this.child = spawn(command, [...args], {
      cwd: this.workspace,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...options.env },
      stdio: ["pipe", "pipe", "pipe", "pipe"],
      detached: true,
    });
    this.input = this.child.stdio[0] as Writable;
    this.input.on("error", () => undefined);
    this.exited = new Promise((resolve) => {
      this.child.once("close", (code, signal) => {
        this.exitInfo = { code, signal };
        this.notify();
        resolve(this.exitInfo);
      });
    });
    this.child.stdout?.on("data", (d: Buffer) => {
      this.stdout += d.toString("utf8");
      this.notify();
    });
    this.child.stderr?.on("data", (d: Buffer) => {
      this.stderr += d.toString("utf8");
      this.notify();
    });
    this.readFrames(this.child.stdio[3] as Readable);
  }

  static spawn(options: HarnessOptions): AgentHarness {
    return new AgentHarness(options);
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  send(frame: HostToAgent): void {
    this.sendRaw(JSON.stringify(frame));
  }

  /** Writes one pre-serialized frame line (benchmarks keep host-side JSON.stringify out of timings). */
  sendRaw(json: string): void {
    this.input.write(json + "\n");
  }

  /** Sends `init`: a brand-new instance (stateVersion 0) unless overridden. */
  init(overrides: Partial<InitFrame> = {}): InitFrame {
    const frame: InitFrame = {
      type: "init",
      protocol: 1,
      instanceId: "inst-test",
      agentId: "agent-test",
      deploymentId: "test:1.0.0@local",
      workspace: this.workspace,
      env: {},
      state: {},
      stateVersion: 0,
      ...overrides,
    };
    this.send(frame);
    return frame;
  }

  /** init + wait for `ready` (or fail with whatever the agent said instead). */
  async start(overrides: Partial<InitFrame> = {}, timeoutMs = 15_000): Promise<AgentToHost> {
    this.init(overrides);
    const frame = await this.waitFor((f) => f.type === "ready" || f.type === "fatal", timeoutMs);
    if (frame.type === "fatal") throw new Error(`agent failed to start: ${frame.error.message}`);
    return frame;
  }

  /** Sends `message` for `turn` and resolves once its `turn_done` arrives. */
  async turn(turn: number, content: JsonObject, timeoutMs = 15_000, trace: { traceparent?: string; tracestate?: string } = {}): Promise<TurnResult> {
    const from = this.frames.length;
    this.send({ type: "message", turn, content, ...trace });
    const done = (await this.waitFor((f) => f.type === "turn_done" && f.turn === turn, timeoutMs, from)) as DoneFrame;
    const mine = this.frames.slice(from).filter((f) => "turn" in f && f.turn === turn);
    return {
      events: mine.filter((f): f is EventFrame => f.type === "event"),
      patches: mine.filter((f): f is PatchFrame => f.type === "state_patch"),
      done,
    };
  }

  /** First frame (at index >= from) matching `predicate`. */
  waitFor(predicate: (frame: AgentToHost) => boolean, timeoutMs = 15_000, from = 0): Promise<AgentToHost> {
    let scanned = from;
    return this.until(
      () => {
        for (; scanned < this.frames.length; scanned++) {
          const frame = this.frames[scanned] as AgentToHost;
          if (predicate(frame)) return frame;
        }
        return undefined;
      },
      timeoutMs,
      "frame",
    );
  }

  /** Resolves when `probe` returns something other than undefined. */
  until<T>(probe: () => T | undefined, timeoutMs: number, what = "condition"): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const value = probe();
        if (value === undefined) return false;
        cleanup();
        resolve(value);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(this.frames).slice(-1500)}\nstderr: ${this.stderr.slice(-1500)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      const listener = () => {
        check();
      };
      this.listeners.add(listener);
      check();
    });
  }

  /** Closes stdin (EOF). */
  endInput(): void {
    this.input.end();
  }

  /** Kills the process group if still running, waits for exit, removes an owned workspace. */
  async close(): Promise<ExitInfo> {
    if (this.alive && this.child.pid) {
      try {
        process.kill(-this.child.pid, "SIGKILL");
      } catch {
        this.child.kill("SIGKILL");
      }
    }
    const info = await this.exited;
    if (this.ownsWorkspace) fs.rmSync(this.workspace, { recursive: true, force: true });
    return info;
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private readFrames(stream: Readable): void {
    let pending: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => {
      let start = 0;
      let newline = chunk.indexOf(10);
      while (newline !== -1) {
        pending.push(chunk.subarray(start, newline));
        const line = Buffer.concat(pending).toString("utf8");
        pending = [];
        try {
          this.frames.push(parseAgentFrame(line));
        } catch {
          this.badLines.push(line);
        }
        start = newline + 1;
        newline = chunk.indexOf(10, start);
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
      this.notify();
    });
  }
}

/** Applies every state_patch in `frames`, in order, to a copy of `initial`. */
export function replayState(initial: JsonObject, frames: readonly AgentToHost[]): Json {
  let state: Json = JSON.parse(JSON.stringify(initial)) as Json;
  for (const frame of frames) {
    if (frame.type === "state_patch") state = applyPatch(state, JSON.parse(JSON.stringify(frame.ops)) as JsonPatchOp[]);
  }
  return state;
}

export function fixture(...parts: string[]): string {
  return path.join(REPO_ROOT, "test/sdk/fixtures", ...parts);
}

export function example(name: string, entry: string): string {
  return path.join(REPO_ROOT, "examples", name, entry);
}
