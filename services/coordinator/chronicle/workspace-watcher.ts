/**
 * Optional change tracking for capture(): one worker thread per process (WatchThread, shared by every
 * Chronicle; its code is watch-worker.ts) holds an inotify watch (Node `fs.watch`, non-recursive) on every
 * directory of each workspace and collects, per workspace, the relative paths that events name. capture()
 * is synchronous and is called right after the agent's turn, so events for the last writes may still sit in the kernel queue; `drain()`
 * therefore runs a **barrier**: it touches (`utimes`, one syscall, no data written) one of the workspace's
 * private sentinel files, whose directory the same thread watches. All watches of the thread share one
 * inotify instance (one libuv loop), whose queue is ordered, and the kernel queues an event inside the
 * syscall that causes it; so once the thread has handled the sentinel event, it has handled every event of
 * every write that returned before `drain()` started. Barrier n touches sentinel `n % SENTINEL_SLOTS`: the
 * event's name tells which barrier it is (fewer than that many are ever outstanding), so an event left over
 * from a barrier that timed out can never confirm a later one. The worker answers with the dirty paths since
 * the previous barrier; the main thread waits for it with `Atomics.wait` (it cannot run its own event loop
 * inside capture()). A barrier costs the main thread ~5 µs plus the thread's wake-up (a rewritten sentinel
 * file cost ~120-300 µs on ext4: its truncation).
 *
 * The worker never decides what changed: it only says where to look. A directory event (created, removed,
 * renamed, chmod'ed) names the directory, and the capture walks that whole subtree; a new directory is watched
 * *before* its path is reported, so files written into it before the watch existed are found by that walk.
 * Lost events are the danger: inotify drops events silently when its queue (max_queued_events) overflows and
 * libuv does not report the overflow. An overflow needs a full queue, and every queued event is eventually
 * delivered, so the thread counts events (of every workspace: they share the queue): more than half the
 * queue size since a workspace's last barrier, and its `drain()` asks for a full scan. Worker errors, timeouts and a replaced workspace root do too (docs/chronicle.md).
 *
 * Most turns change no file, and `unchanged()` says so without a barrier: the thread counts, in memory both
 * threads read, the events of each workspace's watches, and a thread asleep in `epoll_wait` has handled every
 * event queued so far (thread-idle-probe.ts). Asleep, and no event for this workspace since its last barrier:
 * every write that returned before the call would have woken the thread or been counted.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from "node:worker_threads";
import { startModuleWorker } from "../../shared/module-worker.js";
import { ThreadIdleProbe } from "./thread-idle-probe.js";
import { THREAD_EVENTS, THREAD_TID, WORKSPACE_EVENTS, type BarrierMessage, type WatchCommand, type WatchRequest } from "./watch-worker.js";

/** Sentinel directories are `<tmpdir>/podium-chronicle-watch-<pid>-<random>`: the pid says whose it is. */
export const WATCH_DIR_PREFIX = "podium-chronicle-watch-";

/**
 * Removes the sentinel directories of processes that are gone (a coordinator killed with -9 never ran
 * close()). Directories of live processes, of this one, and without a pid in their name are left alone:
 * several coordinators may share a host and its temp dir. Returns how many were removed.
 */
export function removeOrphanWatchDirs(tmpDir: string = os.tmpdir()): number {
  let names: string[];
  try {
    names = fs.readdirSync(tmpDir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith(WATCH_DIR_PREFIX)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(WATCH_DIR_PREFIX.length))?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processExists(pid)) continue;
    try {
      fs.rmSync(path.join(tmpDir, name), { recursive: true, force: true });
      removed++;
    } catch {
      // another process's cleanup raced this one, or not ours to remove: leave it
    }
  }
  return removed;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // alive, under another user
  }
}

type WaitAsyncResult = { async: false; value: "not-equal" | "timed-out" } | { async: true; value: Promise<"ok" | "timed-out"> };
/** `Atomics.waitAsync` (V8 since Node 16; not in TypeScript's ES2023 lib). */
const waitAsync = (Atomics as unknown as { waitAsync(array: Int32Array, index: number, value: number, timeoutMs: number): WaitAsyncResult }).waitAsync;

/** Sentinel files per workspace: barrier n touches `<sentinelDir>/<n % SENTINEL_SLOTS>`. */
const SENTINEL_SLOTS = 4;

/** statfs f_type of local Linux file systems: ext2/3/4, xfs, btrfs, tmpfs, overlayfs, f2fs, zfs, bcachefs. */
const LOCAL_FS_MAGIC = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x794c7630, 0xf2f52010, 0x2fc12fc1, 0xca451a4e]);

function isBarrierMessage(value: unknown): value is BarrierMessage {
  return typeof value === "object" && value !== null && "seq" in value && "threadEvents" in value && "paths" in value && Array.isArray(value.paths);
}

/** What `drain()` found: dirty paths since the previous drain, or a reason to scan everything. */
export type DrainResult = { ok: true; paths: Set<string> } | { ok: false; reason: string; fatal: boolean };

export interface WorkspaceWatcherOptions {
  /** How long drain() waits for the worker to confirm the barrier before falling back (default 2000 ms). */
  barrierTimeoutMs?: number;
}

function maxQueuedEvents(): number {
  try {
    const value = Number(fs.readFileSync("/proc/sys/fs/inotify/max_queued_events", "utf8"));
    return Number.isSafeInteger(value) && value > 0 ? value : 16384;
  } catch {
    return 16384;
  }
}

/**
 * The one watch thread of this process, shared by every workspace: one V8 isolate (~0.3 MB per workspace
 * instead of ~6-8 MB for a thread each) and one inotify instance (`max_user_instances` is 128 by default).
 * Started by the first watcher, ended with the last; a failure of the thread fails every watcher.
 */
class WatchThread {
  private static current: WatchThread | undefined;
  private readonly worker: Worker;
  private readonly listeners = new Map<number, (error: string) => void>();
  private nextId = 1;
  private readonly shared = new SharedArrayBuffer(8);
  /** The thread's counters (watch-worker.ts THREAD_EVENTS, THREAD_TID). */
  readonly counters = new Int32Array(this.shared);
  /** null: this kernel cannot tell (then every capture runs its barrier). */
  private probe: ThreadIdleProbe | null | undefined;

  static acquire(): WatchThread {
    WatchThread.current ??= new WatchThread();
    return WatchThread.current;
  }

  private constructor() {
    this.worker = startModuleWorker(new URL("./watch-worker.js", import.meta.url));
    const failAll = (error: string) => {
      if (WatchThread.current === this) WatchThread.current = undefined;
      for (const listener of this.listeners.values()) listener(error);
    };
    this.worker.on("error", (err: unknown) => failAll(`watch worker failed: ${String(err)}`));
    this.worker.on("exit", () => failAll("watch worker exited"));
    this.worker.unref();
  }

  add(watch: Omit<WatchRequest, "id" | "threadShared">, onError: (error: string) => void): number {
    const id = this.nextId++;
    this.listeners.set(id, onError);
    const command: WatchCommand = { type: "add", id, ...watch, threadShared: this.shared };
    this.worker.postMessage(command, [watch.port]);
    return id;
  }

  remove(id: number): void {
    if (!this.listeners.delete(id)) return;
    if (this.listeners.size > 0) {
      const command: WatchCommand = { type: "remove", id };
      this.worker.postMessage(command);
      return;
    }
    if (WatchThread.current === this) WatchThread.current = undefined;
    this.probe?.close();
    this.probe = null;
    void this.worker.terminate().catch(() => undefined);
  }

  /** True when the thread sleeps in epoll_wait: it has handled every inotify event queued until now. */
  idle(): boolean {
    if (this.probe === undefined) {
      const tid = Atomics.load(this.counters, THREAD_TID);
      if (tid === 0) return false;
      this.probe = ThreadIdleProbe.open(tid) ?? null;
    }
    return this.probe?.sleepingInEpoll() ?? false;
  }
}

export class WorkspaceWatcher {
  private readonly thread: WatchThread;
  private readonly watchId: number;
  private readonly port: MessagePort;
  private readonly state: Int32Array;
  private readonly sentinelDir: string;
  private readonly sentinels: string[];
  private readonly rootIno: number;
  private readonly eventLimit: number;
  private readonly barrierTimeoutMs: number;
  private seq = 0;
  /** The last barrier whose drain ended confirmed: every message up to it was received and handed out. */
  private consumed = 0;
  private timeouts = 0;
  private waited = false;
  /** The thread's event count where this workspace was last known clean: too many since, and it scans fully. */
  private eventBaseline: number;
  /** The counts of the last barrier received (watch-worker.ts BarrierMessage). */
  private ackedThreadEvents: number;
  private ackedWorkspaceEvents: number | undefined;
  private paths = new Set<string>();
  private error: string | undefined;
  private closed = false;

  /**
   * Only where inotify backs fs.watch (Linux) and only on local file systems, where every write made through
   * this kernel produces an event (not NFS, FUSE, 9p, SMB...: writes by other hosts or daemons are invisible).
   */
  static supported(rootReal: string): boolean {
    if (process.platform !== "linux") return false;
    try {
      return LOCAL_FS_MAGIC.has(Number(fs.statfsSync(rootReal).type));
    } catch {
      return false;
    }
  }

  constructor(
    private readonly rootReal: string,
    ignore: ReadonlySet<string>,
    options: WorkspaceWatcherOptions = {},
  ) {
    this.barrierTimeoutMs = options.barrierTimeoutMs ?? 2000;
    this.eventLimit = Math.floor(maxQueuedEvents() / 2);
    this.rootIno = fs.lstatSync(rootReal).ino;
    this.sentinelDir = fs.mkdtempSync(path.join(os.tmpdir(), `${WATCH_DIR_PREFIX}${process.pid}-`));
    this.sentinels = Array.from({ length: SENTINEL_SLOTS }, (_, slot) => path.join(this.sentinelDir, String(slot)));
    for (const sentinel of this.sentinels) fs.writeFileSync(sentinel, "");
    const shared = new SharedArrayBuffer(16);
    this.state = new Int32Array(shared);
    const channel = new MessageChannel();
    this.port = channel.port1;
    this.thread = WatchThread.acquire();
    this.eventBaseline = this.ackedThreadEvents = Atomics.load(this.thread.counters, THREAD_EVENTS);
    this.watchId = this.thread.add({ root: rootReal, ignore: [...ignore], sentinelDir: this.sentinelDir, slots: SENTINEL_SLOTS, shared, port: channel.port2 }, (error) => {
      this.error ??= error;
      // A thread that died cannot say so through the shared state: wake whoever waits on it.
      Atomics.store(this.state, 0, 2);
      Atomics.notify(this.state, 0);
      Atomics.notify(this.state, 1);
    });
  }

  /** True once every directory is watched: a full scan that starts after this can be trusted as a baseline. */
  get ready(): boolean {
    return Atomics.load(this.state, 0) === 1;
  }

  get failed(): boolean {
    return this.error !== undefined || Atomics.load(this.state, 0) === 2;
  }

  /**
   * Blocks until the worker watches every directory (or failed, or `timeoutMs` passed); returns `ready`.
   * Waits at most once per watcher: a worker that died before it could say so would otherwise stall every call.
   */
  waitReady(timeoutMs: number): boolean {
    if (this.waited) timeoutMs = 0;
    this.waited = true;
    const deadline = Date.now() + timeoutMs;
    for (let state = Atomics.load(this.state, 0); state === 0; state = Atomics.load(this.state, 0)) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) break;
      Atomics.wait(this.state, 0, 0, left);
    }
    return this.ready;
  }

  /**
   * Runs the barrier and returns every path named by an event since the previous drain. `ok: false` means
   * "scan everything": `fatal` when the watcher is broken for good (close it), else only this time.
   */
  drain(): DrainResult {
    const started = this.startBarrier();
    if (typeof started !== "number") return started;
    const deadline = Date.now() + this.barrierTimeoutMs;
    for (let seen = Atomics.load(this.state, 1); seen < started && Atomics.load(this.state, 0) !== 2; seen = Atomics.load(this.state, 1)) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      Atomics.wait(this.state, 1, seen, left);
    }
    return this.endBarrier(started);
  }

  /**
   * drain() without blocking the thread: the event loop runs while the watch thread catches up (the
   * barrier's wake-up, ~0.1-0.2 ms, is no longer a stall of every agent of the process). Drains may overlap:
   * barriers are confirmed in order, and whichever ends first takes the paths of both.
   */
  async drainAsync(): Promise<DrainResult> {
    const started = this.startBarrier();
    if (typeof started !== "number") return started;
    const deadline = Date.now() + this.barrierTimeoutMs;
    for (let seen = Atomics.load(this.state, 1); seen < started && Atomics.load(this.state, 0) !== 2; seen = Atomics.load(this.state, 1)) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) break;
      const wait = waitAsync(this.state, 1, seen, left);
      if (wait.async) await wait.value;
    }
    return this.endBarrier(started);
  }

  /** Touches the next barrier's sentinel; returns its seq, or why there is none. */
  private startBarrier(): number | DrainResult {
    if (this.closed) return { ok: false, reason: "closed", fatal: true };
    const root = fs.lstatSync(this.rootReal, { throwIfNoEntry: false });
    if (!root?.isDirectory() || root.ino !== this.rootIno) return { ok: false, reason: "workspace root replaced", fatal: true };
    const target = ++this.seq;
    // A timed-out barrier stays outstanding; two in a row are fatal (below), so this holds unless broken.
    if (target - Atomics.load(this.state, 1) >= SENTINEL_SLOTS) return { ok: false, reason: "barriers outstanding", fatal: true };
    Atomics.store(this.state, 2, target);
    try {
      fs.utimesSync(this.sentinels[target % SENTINEL_SLOTS] as string, target, target);
    } catch (err) {
      return { ok: false, reason: `cannot write the barrier sentinel: ${String(err)}`, fatal: true };
    }
    return target;
  }

  private endBarrier(target: number): DrainResult {
    if (this.closed) return { ok: false, reason: "closed", fatal: true };
    // Loaded before receiving: the thread posts a barrier's paths before it marks the barrier handled.
    const confirmed = Atomics.load(this.state, 1) >= target;
    this.receive();
    if (this.error !== undefined || Atomics.load(this.state, 0) === 2) {
      return { ok: false, reason: this.error ?? "watch worker failed", fatal: true };
    }
    if (!confirmed) {
      // Once: a busy worker (e.g. watching a huge new tree). Twice in a row: the barrier does not work here.
      return { ok: false, reason: "barrier timeout", fatal: ++this.timeouts >= 2 };
    }
    this.timeouts = 0;
    this.consumed = Math.max(this.consumed, target);
    const paths = this.paths;
    const events = (this.ackedThreadEvents - this.eventBaseline) | 0;
    this.paths = new Set();
    this.eventBaseline = this.ackedThreadEvents;
    if (events > this.eventLimit) return { ok: false, reason: `${events} events: the inotify queue may have overflowed`, fatal: false };
    return { ok: true, paths };
  }

  /**
   * True when this workspace's watches had no event since the last barrier and none can be waiting: the
   * thread was asleep in epoll_wait after this call began (so it had handled every event of every write that
   * returned before), and its count for this workspace is the one of the last barrier. A replaced root (by its
   * own move or delete, or a parent's rename, which sends the root's watch nothing) runs the barrier: its inode is compared. Also requires the last barrier drained and
   * confirmed (nothing received and not handed out), and no more events on the thread since the last clean
   * point than drain() accepts (an overflowed queue loses events silently). Costs a read of /proc (a few µs)
   * instead of the barrier's round trip; false means "run drain()".
   */
  unchanged(): boolean {
    if (this.closed || this.error !== undefined || this.seq === 0 || this.consumed !== this.seq || Atomics.load(this.state, 0) !== 1) return false;
    if (this.ackedWorkspaceEvents === undefined) return false;
    // A root replaced by renaming one of its parents sends the root's watch no event: compare as startBarrier does.
    const root = fs.lstatSync(this.rootReal, { throwIfNoEntry: false });
    if (!root?.isDirectory() || root.ino !== this.rootIno) return false;
    const counters = this.thread.counters;
    const before = Atomics.load(counters, THREAD_EVENTS);
    if (!this.thread.idle()) return false;
    // Loaded after the thread was seen asleep: every event it handled before is in these counts.
    if (Atomics.load(this.state, WORKSPACE_EVENTS) !== this.ackedWorkspaceEvents) return false;
    if (((Atomics.load(counters, THREAD_EVENTS) - this.eventBaseline) | 0) > this.eventLimit) return false;
    // The queue was empty while the thread slept, so no event older than `before` can still be lost.
    this.eventBaseline = before;
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.notify(this.state, 1); // a drainAsync() in progress ends now
    this.thread.remove(this.watchId);
    this.port.close();
    fs.rmSync(this.sentinelDir, { recursive: true, force: true });
  }

  private receive(): void {
    for (let message = receiveMessageOnPort(this.port); message !== undefined; message = receiveMessageOnPort(this.port)) {
      const value: unknown = message.message;
      if (isBarrierMessage(value)) {
        this.ackedThreadEvents = value.threadEvents;
        this.ackedWorkspaceEvents = value.workspaceEvents;
        for (const p of value.paths) this.paths.add(p);
      } else if (typeof value === "object" && value !== null && "error" in value) {
        this.error ??= String(value.error);
      }
    }
  }
}
