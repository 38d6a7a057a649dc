/**
 * One process's start, from its spawn to the agent's `ready`: what it went through (start-progress.ts) and
 * the wait for `ready`, which the ready frame ends, and a `fatal` frame, another protocol, the process's
 * exit, the start timeout or the caller's abort fail.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { AGENT_PROTOCOL_VERSION } from "./agent-protocol.js";
import type { AgentToHost } from "./agent-protocol.js";
import type { AgentProcessHandle, AgentProcessHandlers, ProcessExitInfo } from "./agent-process.js";
import type { InstanceJournal } from "./instance-journal.js";
import { sendInitWhenSetUp } from "./instance-process.js";
import { StartProgress } from "./start-progress.js";

export class ProcessStart {
  private readonly progress = new StartProgress();
  private settle: { resolve(): void; reject(err: Error): void } | undefined;
  private readonly ready: Promise<void>;

  /** `journal`: where the process's output and the start's failures are logged. */
  constructor(private readonly journal: Pick<InstanceJournal, "log">) {
    this.ready = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.ready.catch(() => undefined); // a start that fails before anyone waits (its state did not load)
  }

  /** Names where the start got (quoted when it never became ready). */
  step(what: string): void {
    this.progress.step(what);
  }

  /** Where the process's frames go (`onFrames`) and its output (the log; until `ready`, the start's progress too). */
  handlers(isReady: () => boolean, onFrames: (frames: AgentToHost[]) => void): AgentProcessHandlers {
    return {
      onFrames: (frames) => {
        if (!isReady()) this.step("first frame");
        onFrames(frames);
      },
      onOutput: (stream, line) => {
        if (stream === "stderr" && !isReady()) this.progress.stderrLine(line);
        this.journal.log(stream === "stdout" ? "info" : "warn", stream, line);
      },
      onBadFrame: (reason, line) => this.journal.log("error", "platform", `dropped malformed agent frame: ${reason}`, { frame: line }),
    };
  }

  /** Sends `init` once the sandbox is set up (instance-process.ts); a failed write fails the start. */
  sendInit(process: AgentProcessHandle, init: Uint8Array[], beforeInit: Promise<void> | undefined): void {
    sendInitWhenSetUp(process, init, beforeInit, {
      step: (what) => this.step(what),
      log: (level, message) => this.journal.log(level, "platform", message),
      fail: (err) => this.fail(err),
    });
  }

  /** The agent's `ready` frame: true when it speaks this coordinator's protocol (the wait ends), else the start fails. */
  readyFrame(protocol: number): boolean {
    if (protocol !== AGENT_PROTOCOL_VERSION) {
      this.fail(new ConnectError(`agent speaks protocol ${protocol}; this coordinator speaks ${AGENT_PROTOCOL_VERSION}`, Code.FailedPrecondition));
      return false;
    }
    this.settle?.resolve();
    return true;
  }

  /** Fails the start (nothing once it ended). */
  fail(err: Error): void {
    this.settle?.reject(err);
  }

  /** The process exited: a start still waiting fails, quoting the agent's last stderr lines. */
  exited(info: ProcessExitInfo): void {
    const tail = this.progress.stderrTail(2000);
    this.fail(new ConnectError(`agent process exited before it was ready (exit code ${info.code}, signal ${info.signal})${tail ? `: ${tail}` : ""}`, Code.FailedPrecondition));
  }

  /**
   * Resolves once the agent is ready; rejects after `timeoutMs` (DeadlineExceeded, logged with the agent's
   * stderr and the CPU it used), when `signal` aborts (Canceled), or with what failed the start.
   */
  async wait(timeoutMs: number, signal: AbortSignal | undefined, cpuUsageMicros?: () => number | undefined): Promise<void> {
    const timedOut = () => {
      if (!this.settle) return;
      const { message, logged } = this.progress.timedOut(timeoutMs, cpuUsageMicros?.());
      this.journal.log("error", "platform", logged);
      this.settle.reject(new ConnectError(message, Code.DeadlineExceeded));
    };
    // setImmediate runs after the poll phase: a `ready` already in the pipe when the timer fires (an event
    // loop that was busy past the deadline) is read first and wins.
    const timer = setTimeout(() => setImmediate(timedOut), timeoutMs);
    const onAbort = () => this.fail(new ConnectError("instance creation was cancelled", Code.Canceled));
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await this.ready;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      this.settle = undefined;
    }
  }
}
