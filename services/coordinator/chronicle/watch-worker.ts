/**
 * The watch thread's code (workspace-watcher.ts WatchThread): one worker per process holds an inotify watch
 * (Node `fs.watch`, non-recursive) on every directory of each workspace it is given, and collects per
 * workspace the relative paths that events name, handing them over at each barrier (the sentinel protocol
 * is described in workspace-watcher.ts).
 */
import fs from "node:fs";
import { parentPort, type MessagePort } from "node:worker_threads";

/** `add`: watch a workspace; `remove`: stop watching it. */
export type WatchCommand = ({ type: "add" } & WatchRequest) | { type: "remove"; id: number };

export interface WatchRequest {
  id: number;
  root: string;
  ignore: string[];
  sentinelDir: string;
  slots: number;
  /**
   * Int32 [0] 0 starting, 1 ready, 2 failed; [1] the last barrier seq handled; [2] the last barrier seq
   * started (set before its sentinel is touched); [3] how many events this workspace's watches had (wrapping;
   * bumped as each is handled, before the thread can sleep again).
   */
  shared: SharedArrayBuffer;
  /** The thread's own counters, the same buffer in every request: see {@link THREAD_EVENTS} and {@link THREAD_TID}. */
  threadShared: SharedArrayBuffer;
  /** Where this workspace's barriers ({@link BarrierMessage}) and its failure (`{error}`) go. */
  port: MessagePort;
}

/** Int32 index in `threadShared`: every event this thread handled, of any workspace (wrapping). */
export const THREAD_EVENTS = 0;
/** Int32 index in `threadShared`: the watch thread's Linux thread id (0 until known). */
export const THREAD_TID = 1;
/** Int32 index in a workspace's `shared`: events of its watches, ignored names and the root's own included (wrapping). */
export const WORKSPACE_EVENTS = 3;

/**
 * A barrier handled: the paths named since the previous one, and the thread's and this workspace's event
 * counts (THREAD_EVENTS, WORKSPACE_EVENTS) when it was handled.
 */
export interface BarrierMessage {
  seq: number;
  threadEvents: number;
  workspaceEvents: number;
  paths: string[];
}

interface Watch {
  fail(message: string): void;
  close(): void;
}

const watches = new Map<number, Watch>();
// Every event this thread handled, whichever workspace it was for: all share one inotify queue, so a flood
// in one workspace can overflow it for all. Each barrier reports this count; too many events since that
// workspace's previous clean point make its capture scan everything (workspace-watcher.ts).
let threadEvents = 0;
let threadState: Int32Array | undefined;

/** The counters the main thread reads without a round trip (workspace-watcher.ts `unchanged()`). */
function shareThread(buffer: SharedArrayBuffer): void {
  if (threadState) return;
  threadState = new Int32Array(buffer);
  const tid = Number(/\/task\/(\d+)$/.exec(readThreadSelf())?.[1]);
  if (Number.isSafeInteger(tid) && tid > 0) Atomics.store(threadState, THREAD_TID, tid);
}

function readThreadSelf(): string {
  try {
    return fs.readlinkSync("/proc/thread-self");
  } catch {
    return "";
  }
}

function countEvent(): void {
  threadEvents = (threadEvents + 1) | 0;
  if (threadState) Atomics.store(threadState, THREAD_EVENTS, threadEvents);
}

const codeOf = (err: unknown): string => String((err as NodeJS.ErrnoException | null)?.code ?? err);

/** One workspace: its own watches, dirty paths, barrier and failure, in this thread shared by all workspaces. */
function startWatch({ id, root, ignore, sentinelDir, slots, shared, threadShared, port }: WatchRequest): void {
  shareThread(threadShared);
  const state = new Int32Array(shared);
  const ignored = new Set(ignore);
  const watchers = new Map<string, { watcher: fs.FSWatcher; ino: number }>(); // relative dir -> its watch
  let sentinelWatcher: fs.FSWatcher | undefined;
  let pending = new Set<string>();
  let acked = 0;
  let failed = false;
  let closed = false;

  const closeWatches = () => {
    for (const { watcher } of watchers.values()) watcher.close();
    watchers.clear();
    sentinelWatcher?.close();
  };
  const fail = (message: string) => {
    if (failed || closed) return;
    failed = true;
    port.postMessage({ error: message });
    Atomics.store(state, 0, 2);
    Atomics.notify(state, 0);
    Atomics.notify(state, 1);
    closeWatches();
  };
  const join = (dir: string, name: string) => (dir === "" ? name : `${dir}/${name}`);
  const abs = (rel: string) => (rel === "" ? root : `${root}/${rel}`);

  const unwatchTree = (rel: string) => {
    const prefix = `${rel}/`;
    for (const [dir, entry] of watchers) {
      if (dir === rel || dir.startsWith(prefix)) {
        entry.watcher.close();
        watchers.delete(dir);
      }
    }
  };

  // Watch first, list second: a directory created after the listing is reported by its parent's watch.
  const watchTree = (rel: string) => {
    const stack = [rel];
    for (let dir = stack.pop(); dir !== undefined && !failed; dir = stack.pop()) {
      const here = dir;
      let stat: fs.Stats;
      try {
        stat = fs.lstatSync(abs(here));
      } catch {
        continue;
      }
      if (!stat.isDirectory()) continue;
      let watcher: fs.FSWatcher;
      try {
        watcher = fs.watch(abs(here), { persistent: true }, (_type, name) => onEvent(here, name));
      } catch (err) {
        const code = codeOf(err);
        if (code === "ENOENT" || code === "ENOTDIR" || code === "EACCES") continue; // gone, or unreadable (kept by capture)
        fail(`cannot watch ${JSON.stringify(here)}: ${code}`);
        return;
      }
      watcher.on("error", (err) => fail(`watch error on ${JSON.stringify(here)}: ${codeOf(err)}`));
      watchers.set(here, { watcher, ino: stat.ino });
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(abs(here), { withFileTypes: true });
      } catch {
        continue;
      }
      for (const entry of entries) {
        if (entry.isDirectory() && !ignored.has(entry.name)) stack.push(join(here, entry.name));
      }
    }
  };

  function onEvent(dir: string, name: string | Buffer | null): void {
    countEvent();
    // Every event, first: a thread seen asleep has counted all it handled (the root's own move or deletion too).
    Atomics.add(state, WORKSPACE_EVENTS, 1);
    if (failed || closed) return;
    if (name === null) {
      pending.add(dir); // no name: look at the whole directory
      return;
    }
    const entry = String(name);
    if (ignored.has(entry)) return;
    const rel = join(dir, entry);
    let stat: fs.Stats | undefined;
    try {
      stat = fs.lstatSync(abs(rel), { throwIfNoEntry: false });
    } catch {
      stat = undefined;
    }
    const current = watchers.get(rel);
    if (stat?.isDirectory()) {
      if (!current || current.ino !== stat.ino) {
        unwatchTree(rel);
        watchTree(rel);
      }
    } else if (current) {
      unwatchTree(rel);
    }
    pending.add(rel); // reported after the watch exists: the capture walks the subtree
  }

  // Sentinel "k" stands for the first barrier after the last one handled whose seq % slots is k. Barriers
  // touch their sentinels in seq order and fewer than slots are ever outstanding, so that is this event's
  // barrier; a seq beyond the last one started is a duplicate event of one already handled.
  const onSentinel = (name: string | Buffer | null) => {
    countEvent();
    if (failed || closed) return;
    const slot = Number(name);
    if (!Number.isInteger(slot) || slot < 0 || slot >= slots) return;
    const seq = acked + 1 + ((((slot - acked - 1) % slots) + slots) % slots);
    if (seq > Atomics.load(state, 2)) return;
    acked = seq;
    const barrier: BarrierMessage = { seq, threadEvents, workspaceEvents: Atomics.load(state, WORKSPACE_EVENTS), paths: [...pending] };
    port.postMessage(barrier);
    pending = new Set();
    Atomics.store(state, 1, seq);
    Atomics.notify(state, 1);
  };

  watches.set(id, {
    fail,
    close() {
      closed = true;
      closeWatches();
      port.close();
    },
  });
  try {
    watchTree("");
    if (!watchers.has("")) fail("cannot watch the workspace root");
    sentinelWatcher = fs.watch(sentinelDir, { persistent: true }, (_type, name) => onSentinel(name));
    sentinelWatcher.on("error", (err) => fail(`sentinel watch error: ${codeOf(err)}`));
    if (!failed) {
      Atomics.store(state, 0, 1);
      Atomics.notify(state, 0);
    }
  } catch (err) {
    fail(`watcher start failed: ${codeOf(err)}`);
  }
}

parentPort?.on("message", (message: WatchCommand) => {
  if (message.type === "add") startWatch(message);
  else {
    const watch = watches.get(message.id);
    watches.delete(message.id);
    watch?.close();
  }
});

process.on("uncaughtException", (err) => {
  for (const watch of watches.values()) watch.fail(`watch worker crashed: ${err.stack ?? String(err)}`);
});
