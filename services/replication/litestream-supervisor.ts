/**
 * Runs one `litestream replicate -config <generated yml>` child for a fixed set of databases (the
 * agent replication facade starts one per agent; docs/replication.md explains why), restarts it with
 * backoff when it dies, and reports per-database replication lag (replication-tracker.ts).
 *
 * The child runs in its own process group with `-exec <a watch of this process>` (PARENT_WATCH): if this
 * process dies (kill -9 of the coordinator), the watch ends within a second and Litestream shuts down
 * after a final sync instead of lingering as an orphan; its output goes through a relay (output-relay.ts)
 * so that the broken pipes of the dead coordinator do not kill it first. Killing the group also takes
 * the watch and the relay with it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { S3Client } from "@aws-sdk/client-s3";
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "../shared/logger.js";
import { errorMessage } from "../shared/errors.js";
import { processStartTime } from "../coordinator/sandbox/system-tools.js";
import { LineSplitter } from "../coordinator/line-splitter.js";
import { relayedCommand } from "./output-relay.js";
import { litestreamBinary, litestreamEnv, renderReplicateConfig } from "./litestream-config.js";
import { writeGenerationMarker } from "./generation-marker.js";
import { parseLitestreamLine, type LitestreamLogEvent } from "./litestream-log.js";
import type { CompiledS3Settings, CompiledTimings } from "./replication-options.js";
import { ReplicationTracker, type DatabaseReplicationStatus } from "./replication-tracker.js";
import { readLocalGeneration, readLocalWalPosition, readShadowWalSalt } from "./wal-probe.js";

/**
 * Ends once this process is gone: its pid is dead, a zombie, or another process's (the start time in
 * /proc/<pid>/stat differs). `tail --pid` waited as long as the pid existed: a pid reused within its
 * poll (pid_max is 32768 on many hosts) kept an orphaned Litestream running.
 */
const PARENT_WATCH = `'p=$1; t=$2; while f=$(sed "s/.*) //" /proc/$p/stat 2>/dev/null) && set -- $f && [ "$1" != Z ] && [ "\${20}" = "$t" ]; do sleep 1; done'`;
const SH = fs.existsSync("/bin/sh") ? "/bin/sh" : undefined;
/** This process's start time, which the watch compares (read once: it never changes). */
const STARTED = processStartTime(process.pid);

export interface SupervisedDatabase {
  /** Short name for status ("messages.db"). */
  name: string;
  /** Absolute path of the SQLite file. */
  path: string;
  /** S3 key prefix of its replica. */
  replicaPath: string;
}

export interface LitestreamSupervisorOptions {
  /** Names the config file and the log fields (the agent id). */
  name: string;
  databases: readonly SupervisedDatabase[];
  s3: CompiledS3Settings;
  timings: CompiledTimings;
  /** Where the generated config goes (it holds no secrets). */
  configDir: string;
  logger: Logger;
  binary?: string;
  /** How often the local WAL ends are sampled for the lag. Default 250. */
  probeIntervalMs?: number;
  /** Restart delay after an unexpected exit: doubles from `initialMs` up to `maxMs`. Default 250 / 30000. */
  restartDelay?: { initialMs: number; maxMs: number };
  /** Exit when this process dies (see above). Default true. */
  watchParent?: boolean;
  /** Litestream's process group (its relay) on every start, and undefined once stop() is done (upload-keeper.ts). */
  onProcess?: (pid: number | undefined) => void;
  /** Every Litestream event (tests, metrics). */
  onEvent?: (event: LitestreamLogEvent) => void;
  /** Age of each local change when it reached S3 (bench). */
  onCovered?: (db: string, ageMs: number) => void;
  /**
   * Record the generation of every database in `<prefix>agents/<agentId>/generations.json` after its
   * first upload (generation-marker.ts), while `mayWrite()` (the lease) allows.
   */
  generationMarker?: { client: S3Client; agentId: string; coordinatorId: string; mayWrite: () => boolean };
}

export type SupervisorState = "running" | "backoff" | "stopping" | "stopped";

export interface SupervisorStatus {
  state: SupervisorState;
  pid: number | undefined;
  restarts: number;
  lastError: string | undefined;
  databases: DatabaseReplicationStatus[];
}

/** A healthy run this long resets the restart backoff. */
const STABLE_RUN_MS = 30_000;
const ERROR_LOG_INTERVAL_MS = 30_000;

export class LitestreamSupervisor {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stateValue: SupervisorState = "stopped";
  private restartCount = 0;
  private failures = 0;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly probeTimer: NodeJS.Timeout;
  private readonly trackers = new Map<string, ReplicationTracker>();
  private readonly configFile: string;
  private lastErrorText: string | undefined;
  private lastErrorLoggedAt = 0;
  private stderrTail = "";
  private readonly generations: Record<string, string> = {};
  private markerQueued = false;
  private markerChain: Promise<void> = Promise.resolve();
  private markerRetry: NodeJS.Timeout | undefined;

  private constructor(private readonly options: LitestreamSupervisorOptions) {
    for (const db of options.databases) {
      const tracker = new ReplicationTracker(db.name, options.onCovered ? (age) => options.onCovered?.(db.name, age) : undefined);
      tracker.generation = readLocalGeneration(db.path);
      this.trackers.set(db.path, tracker);
    }
    fs.mkdirSync(options.configDir, { recursive: true });
    this.configFile = path.join(options.configDir, `${options.name}.litestream.yml`);
    fs.writeFileSync(this.configFile, renderReplicateConfig(options.databases, options.s3, options.timings), { mode: 0o600 });
    this.sample();
    this.probeTimer = setInterval(() => this.sample(), options.probeIntervalMs ?? 250);
    this.probeTimer.unref();
  }

  /** Writes the config and starts Litestream. */
  static start(options: LitestreamSupervisorOptions): LitestreamSupervisor {
    const supervisor = new LitestreamSupervisor(options);
    supervisor.launch();
    return supervisor;
  }

  get state(): SupervisorState {
    return this.stateValue;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Unexpected exits that were followed by a restart. */
  get restarts(): number {
    return this.restartCount;
  }

  status(now = Date.now()): SupervisorStatus {
    this.sample(now);
    return {
      state: this.stateValue,
      pid: this.pid,
      restarts: this.restartCount,
      lastError: this.lastErrorText,
      databases: [...this.trackers.values()].map((tracker) => tracker.status(now)),
    };
  }

  /** True when every change committed to the local WALs so far is in S3 (samples them first). */
  get caughtUp(): boolean {
    this.sample();
    return [...this.trackers.values()].every((tracker) => tracker.caughtUp);
  }

  /** Waits until every change committed before the call is in S3; false on timeout. */
  async waitForCatchUp(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.caughtUp) return true;
      if (Date.now() >= deadline || signal?.aborted || this.stateValue === "stopped") return false;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * Stops Litestream. Graceful: SIGTERM (Litestream uploads what its shadow WAL holds one last time),
   * SIGKILL after `timeoutMs` (default 10 s; Litestream retries forever while S3 is down). Not graceful:
   * SIGKILL at once, no final upload (fencing). `synced`: Litestream exited by itself with status 0
   * and its reports cover every change in the local WALs (exit 0 alone proves nothing: a Litestream
   * stopped before its first monitor tick exits 0 without uploading anything).
   */
  async stop(options: { graceful: boolean; timeoutMs?: number }): Promise<{ synced: boolean }> {
    clearInterval(this.probeTimer);
    clearTimeout(this.restartTimer);
    clearTimeout(this.markerRetry);
    let markerTimer: NodeJS.Timeout | undefined;
    await Promise.race([this.markerChain, new Promise((resolve) => (markerTimer = setTimeout(resolve, options.graceful ? 5000 : 0)))]);
    clearTimeout(markerTimer);
    const child = this.child;
    if (this.stateValue === "stopped" || this.stateValue === "stopping") {
      await this.exited;
      return { synced: false };
    }
    this.stateValue = "stopping";
    let exitedCleanly = false;
    if (child && child.exitCode === null && child.signalCode === null) {
      const result = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
      if (options.graceful) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => this.killGroup(child), options.timeoutMs ?? 10_000);
        const { code, signal } = await result;
        clearTimeout(timer);
        exitedCleanly = code === 0 && signal === null;
      } else {
        this.killGroup(child);
        await result;
      }
    }
    await this.exited; // stdout drained: the final uploads' reports are in
    const synced = options.graceful && exitedCleanly && this.caughtUp;
    this.stateValue = "stopped";
    fs.rmSync(this.configFile, { force: true });
    this.options.onProcess?.(undefined);
    return { synced };
  }

  private launch(): void {
    const { options } = this;
    const args = ["replicate", "-config", this.configFile];
    if ((options.watchParent ?? true) && SH && STARTED) args.push("-exec", `${SH} -c ${PARENT_WATCH} parent-watch ${process.pid} ${STARTED}`);
    let child: ChildProcess;
    try {
      // Through the relay (output-relay.ts): a coordinator's death must not kill Litestream before its final sync.
      const command = relayedCommand(options.binary ?? litestreamBinary(), args);
      child = spawn(command.command, command.args, {
        env: litestreamEnv(options.s3),
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
    } catch (err) {
      this.recordError(`cannot start litestream: ${errorMessage(err)}`);
      this.scheduleRestart();
      return;
    }
    this.child = child;
    if (child.pid !== undefined) options.onProcess?.(child.pid);
    this.stateValue = "running";
    this.startedAt = Date.now();
    this.stderrTail = "";
    const splitter = new LineSplitter((lines) => {
      for (const line of lines) this.onLine(line);
    });
    child.stdout?.on("data", (chunk: Buffer) => splitter.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => (this.stderrTail = (this.stderrTail + chunk.toString()).slice(-2000)));
    // "close" comes after stdout is drained; tail (-exec) holds stdout open until the group is killed.
    this.exited = new Promise((resolve) => {
      child.once("error", (err) => {
        this.recordError(`litestream: ${errorMessage(err)}`);
        resolve();
        if (this.stateValue === "running") this.onUnexpectedExit(null, null);
      });
      child.once("close", () => {
        splitter.end();
        resolve();
      });
    });
    child.once("exit", (code, signal) => {
      this.killGroup(child);
      if (this.stateValue === "running") this.onUnexpectedExit(code, signal);
    });
    options.logger.debug("litestream started", { agent_id: options.name, pid: child.pid ?? null, databases: options.databases.length });
  }

  private onUnexpectedExit(code: number | null, signal: NodeJS.Signals | null): void {
    const ranMs = Date.now() - this.startedAt;
    if (ranMs >= STABLE_RUN_MS) this.failures = 0;
    const why = `${signal ?? `exit ${String(code)}`}${this.stderrTail ? `: ${this.stderrTail.trim().slice(-300)}` : ""}`;
    this.recordError(`litestream exited (${why})`);
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    const { initialMs, maxMs } = this.options.restartDelay ?? { initialMs: 250, maxMs: 30_000 };
    const delay = Math.min(maxMs, initialMs * 2 ** this.failures);
    this.failures++;
    this.stateValue = "backoff";
    this.options.logger.warn("litestream stopped unexpectedly; restarting", { agent_id: this.options.name, delay_ms: delay, error: this.lastErrorText });
    this.restartTimer = setTimeout(() => {
      if (this.stateValue !== "backoff") return;
      this.restartCount++;
      this.launch();
    }, delay);
    this.restartTimer.unref();
  }

  private killGroup(child: ChildProcess): void {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  private onLine(line: string): void {
    const event = parseLitestreamLine(line);
    if (!event) return;
    const now = event.at;
    if (event.type === "error") {
      this.recordError(event.message);
    } else {
      const tracker = this.trackers.get(event.db);
      if (tracker && event.type === "generation") tracker.generation = event.generation;
      if (tracker && event.type === "replicated") {
        const { generation, index } = event.position;
        tracker.replicated(event.position, readShadowWalSalt(event.db, generation, index), now);
        if (this.generations[tracker.db] !== generation) {
          this.generations[tracker.db] = generation;
          this.queueMarker();
        }
      }
    }
    this.options.onEvent?.(event);
  }

  /** Writes the generation marker soon (one write for a burst of generation changes), retrying on failure. */
  private queueMarker(): void {
    const marker = this.options.generationMarker;
    if (!marker || this.markerQueued || this.stateValue === "stopped") return;
    this.markerQueued = true;
    this.markerChain = this.markerChain.then(async () => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      this.markerQueued = false;
      if (!marker.mayWrite()) return;
      try {
        await writeGenerationMarker(marker.client, this.options.s3, marker.agentId, {
          generations: { ...this.generations },
          coordinatorId: marker.coordinatorId,
          updatedAt: Date.now(),
        });
      } catch (err) {
        this.recordError(`cannot record generations: ${errorMessage(err)}`);
        if (this.stateValue === "stopping" || this.stateValue === "stopped") return;
        this.markerRetry = setTimeout(() => this.queueMarker(), 1000);
        this.markerRetry.unref();
      }
    });
  }

  private recordError(message: string): void {
    this.lastErrorText = message;
    const now = Date.now();
    if (now - this.lastErrorLoggedAt < ERROR_LOG_INTERVAL_MS) return;
    this.lastErrorLoggedAt = now;
    this.options.logger.warn("litestream error", { agent_id: this.options.name, error: message });
  }

  /** Samples where every local WAL ends. */
  private sample(now = Date.now()): void {
    for (const [dbPath, tracker] of this.trackers) tracker.sample(readLocalWalPosition(dbPath), now);
  }
}
