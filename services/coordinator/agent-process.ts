/**
 * One agent OS process: spawns the runner, frames the protocol (agent-protocol.ts) over stdin / fd 3,
 * and turns stdout/stderr into log lines. Owns the child: `kill()` and `exited` always settle.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { parseAgentFrame, type AgentToHost, type HostToAgent } from "./agent-protocol.js";
import { errorMessage } from "../shared/errors.js";
import { FrameDelivery } from "./frame-delivery.js";
import { LineSplitter } from "./line-splitter.js";

/** Host pids of a sandbox, from bwrap's info fd: bwrap itself and the sandbox's init (its namespaces' owner). */
export interface SandboxPids {
  outer: number;
  sandbox: number;
}

/** Where a process's frames and output go; a warm runner's are replaced when it is claimed (attach). */
export interface AgentProcessHandlers {
  /** Every complete frame of one read from fd 3, in order (a burst is one batch). */
  onFrames(frames: AgentToHost[]): void;
  onOutput(stream: "stdout" | "stderr", line: string): void;
  onBadFrame(reason: string, line: string): void;
}

export interface AgentProcessOptions extends AgentProcessHandlers {
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Outer uid/gid of the process (the coordinator is root): Node drops to them, clearing supplementary groups. */
  uid?: number;
  gid?: number;
  /**
   * The command is bwrap with --info-fd 4 --block-fd 5: once it reports the sandbox's pid, `prepare` runs
   * (cgroup, network) and only then is the agent's command let go. A failed `prepare` kills the sandbox.
   */
  prepare?: (pids: SandboxPids, signal: AbortSignal) => Promise<void>;
}

export interface ProcessExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What an instance uses of its process: AgentProcess, or a unit test's fake (test/helpers/fake-agent-process.ts). */
export interface AgentProcessHandle {
  readonly pid: number;
  readonly alive: boolean;
  /** Settles once, after every frame the process wrote was delivered. */
  readonly exited: Promise<ProcessExitInfo>;
  send(frame: HostToAgent): boolean;
  /** Writes one frame already encoded as a line (its parts in order, the last ending in "\n"). */
  write(line: readonly Uint8Array[]): boolean;
  /** Closes the agent's input (the SDKs treat EOF as stop). */
  endInput(): void;
  kill(signal?: NodeJS.Signals): void;
}

/** Longest stdout/stderr line kept; longer lines are cut. */
const MAX_OUTPUT_LINE = 64 * 1024;
/** Largest frame on fd 3 (the largest max_message_bytes); a larger one kills the agent. */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export class AgentProcess implements AgentProcessHandle {
  readonly exited: Promise<ProcessExitInfo>;
  private readonly child: ChildProcess;
  private readonly input: Writable;
  private exitInfo: ProcessExitInfo | undefined;
  private handlers: AgentProcessHandlers;

  constructor(options: AgentProcessOptions) {
    this.handlers = { onFrames: options.onFrames, onOutput: options.onOutput, onBadFrame: options.onBadFrame };
    this.child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env,
      stdio: options.prepare ? ["pipe", "pipe", "pipe", "pipe", "pipe", "pipe"] : ["pipe", "pipe", "pipe", "pipe"],
      detached: true, // own process group, so stop kills the agent's children too
      ...(options.uid !== undefined ? { uid: options.uid } : {}),
      ...(options.gid !== undefined ? { gid: options.gid } : {}),
    });
    const stdio = this.child.stdio;
    this.input = stdio[0] as Writable;
    this.input.on("error", () => undefined); // EPIPE after the agent died; exit handling reports it
    const frames = stdio[3] as Readable;
    const delivery = new FrameDelivery((batch) => this.handlers.onFrames(batch));
    this.exited = new Promise((resolve) => {
      let spawnFailed = false;
      this.child.once("error", (err) => {
        spawnFailed = true;
        this.handlers.onOutput("stderr", `failed to start agent process: ${errorMessage(err)}`);
        this.exitInfo = { code: 127, signal: null };
        resolve(this.exitInfo);
      });
      this.child.once("close", (code, signal) => {
        if (spawnFailed) return;
        this.exitInfo = { code, signal }; // not alive while its last frames are handled: nothing more is sent to it
        delivery.flush(); // every frame it wrote comes before its exit
        resolve(this.exitInfo);
      });
    });
    const splitter = new LineSplitter(
      (lines) => {
        const batch: AgentToHost[] = [];
        for (const line of lines) {
          if (line.length === 0) continue;
          try {
            batch.push(parseAgentFrame(line));
          } catch (err) {
            this.handlers.onBadFrame(errorMessage(err), line.slice(0, 200));
          }
        }
        if (batch.length > 0) delivery.push(batch);
      },
      MAX_FRAME_BYTES,
      () => {
        // A frame this large is a broken or hostile agent: it is dropped, and the agent with it.
        this.handlers.onOutput("stderr", `agent frame larger than ${MAX_FRAME_BYTES} bytes; killing the agent`);
        this.kill("SIGKILL");
      },
    );
    frames.on("data", (chunk: Buffer) => splitter.push(chunk));
    frames.once("end", () => splitter.end());
    for (const name of ["stdout", "stderr"] as const) {
      const stream = this.child[name];
      if (!stream) continue;
      // Bytes, not readline: a line that never ends is cut at MAX_OUTPUT_LINE instead of growing forever.
      const lines = new LineSplitter((batch) => {
        for (const line of batch) this.handlers.onOutput(name, line.endsWith("\r") ? line.slice(0, -1) : line);
      }, MAX_OUTPUT_LINE);
      stream.on("data", (chunk: Buffer) => lines.push(chunk));
      stream.once("end", () => lines.end());
    }
    if (options.prepare) this.handshake(this.child.stdio[4] as Readable, (this.child.stdio as unknown as Writable[])[5] as Writable, options);
  }

  private handshake(info: Readable, block: Writable, options: AgentProcessOptions): void {
    const prepare = options.prepare;
    if (!prepare) return;
    const abort = new AbortController();
    void this.exited.then(() => abort.abort(new Error("the sandbox exited")));
    block.on("error", () => undefined);
    let text = "";
    const onData = (chunk: Buffer) => {
      text += chunk.toString("utf8");
      const match = /"child-pid"\s*:\s*(\d+)/.exec(text);
      if (!match) {
        if (text.length > 4096) fail(new Error("bwrap wrote no child-pid"));
        return;
      }
      // Drained, not destroyed: bwrap writes the rest of its info (namespace ids, "}") in more writes, and a
      // closed pipe killed it with SIGPIPE before it let its sandbox go, which then hung, never running the agent.
      info.off("data", onData);
      info.resume();
      sandboxPid = Number(match[1]);
      prepare({ outer: this.pid, sandbox: sandboxPid }, abort.signal).then(
        () => block.end("1"),
        (err: unknown) => fail(err),
      );
    };
    let sandboxPid: number | undefined;
    const fail = (err: unknown) => {
      if (!this.alive) return;
      this.handlers.onOutput("stderr", `sandbox setup failed: ${errorMessage(err)}`);
      // bwrap arms --die-with-parent only once it read the block fd: its sandbox would outlive it.
      if (sandboxPid) {
        try {
          process.kill(sandboxPid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      this.kill("SIGKILL");
    };
    info.on("data", onData);
    info.on("error", () => undefined);
  }

  /** From now on frames and output go to `handlers` (a warm runner claimed by its instance). */
  attach(handlers: AgentProcessHandlers): this {
    this.handlers = handlers;
    return this;
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  send(frame: HostToAgent): boolean {
    if (!this.alive || this.input.destroyed) return false;
    return this.input.write(JSON.stringify(frame) + "\n");
  }

  /** Writes one frame already encoded as a line (its parts in order, the last ending in "\n"). */
  write(line: readonly Uint8Array[]): boolean {
    if (!this.alive || this.input.destroyed) return false;
    let ok = true;
    for (const part of line) ok = this.input.write(part);
    return ok;
  }

  /** Closes the agent's stdin (the SDKs treat EOF as stop). */
  endInput(): void {
    if (!this.input.destroyed) this.input.end();
  }

  /** Signals the whole process group (the agent and anything it spawned). */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (!this.alive) return;
    const pid = this.child.pid;
    try {
      if (pid) process.kill(-pid, signal);
      else this.child.kill(signal);
    } catch {
      this.child.kill(signal);
    }
  }
}
