/**
 * The one snapshot thread of the process: builds and writes state snapshots of large states, loads them
 * at an agent's start, and checkpoints agents' write-ahead logs, off the main thread. Serializing and
 * compressing a 50 MiB state takes ~1 s of CPU, and decoding and parsing it again about as much; on the
 * main thread that stalled every agent of the coordinator (and a checkpoint, 5-9 ms, all of them too). The
 * thread is started on first use and never holds the process open: a process that ends with a build in
 * flight loses only that snapshot (the patches it covers are stored), or a checkpoint (the WAL keeps it all).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Worker } from "node:worker_threads";
import { startModuleWorker } from "../../shared/module-worker.js";
import type { LoadJob, LoadedState, StoredSnapshot } from "./snapshot-build.js";
import type { DropJob, WriteJob, WrittenSnapshot } from "./snapshot-write.js";
import type { CheckpointFlags } from "./sqlite.js";

type Result = LoadedState | WrittenSnapshot | number | undefined;
type Reply = { id: number; result: Result } | { id: number; error: string };
type Waiter = { resolve(result: Result): void; reject(err: Error): void };
export type SnapshotRequest = { write: WriteJob } | { drop: DropJob } | { load: LoadJob } | { checkpoint: { files: string[]; flags: CheckpointFlags } };

export class SnapshotThread {
  private static current: SnapshotThread | undefined;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Waiter>();
  private nextId = 1;

  static acquire(): SnapshotThread {
    SnapshotThread.current ??= new SnapshotThread();
    return SnapshotThread.current;
  }

  private constructor() {
    this.worker = startModuleWorker(new URL("./snapshot-worker.js", import.meta.url));
    this.worker.on("message", (reply: Reply) => {
      const waiter = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (!waiter) return;
      if ("result" in reply) waiter.resolve(reply.result);
      else waiter.reject(new ConnectError(`snapshot thread: ${reply.error}`, Code.Internal));
    });
    const failAll = (reason: string) => {
      if (SnapshotThread.current === this) SnapshotThread.current = undefined;
      for (const waiter of this.pending.values()) waiter.reject(new ConnectError(reason, Code.Unavailable));
      this.pending.clear();
    };
    this.worker.on("error", (err: unknown) => failAll(`snapshot thread failed: ${String(err)}`));
    this.worker.on("exit", () => failAll("snapshot thread exited"));
    this.worker.unref(); // after the listeners: adding a "message" listener refs the worker's port again
  }

  /**
   * Builds the snapshot `job` describes from state.db's rows and writes its chunks there (snapshot-write.ts);
   * undefined when the job was cancelled before its last chunk.
   */
  write(job: WriteJob): Promise<WrittenSnapshot | undefined> {
    return this.run({ write: job }, undefined) as Promise<WrittenSnapshot | undefined>;
  }

  /** Removes the chunks of snapshots that are gone from `job.file`; resolves to how many. */
  drop(job: DropJob): Promise<number> {
    return this.run({ drop: job }, undefined) as Promise<number>;
  }

  /** PASSIVE checkpoints of one store's WALs (sqlite.ts checkpointFiles). */
  checkpoint(files: string[], flags: CheckpointFlags): Promise<void> {
    return this.run({ checkpoint: { files, flags } }, undefined) as Promise<void>;
  }

  /** Loads the state `job` describes (snapshot + patches) and plans it in pieces for the main thread. */
  load(job: LoadJob): Promise<LoadedState> {
    return this.run({ load: job }, job.base) as Promise<LoadedState>;
  }

  private run(request: SnapshotRequest, base: StoredSnapshot | undefined): Promise<Result> {
    const id = this.nextId++;
    const done = new Promise<Result>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    // Parts that own their whole buffer move to the thread; others (slices of a pooled buffer) are copied.
    const transfer = (base?.parts ?? []).filter((part) => part.byteOffset === 0 && part.byteLength === part.buffer.byteLength).map((part) => part.buffer as ArrayBuffer);
    this.worker.postMessage({ id, ...request }, [...new Set(transfer)]);
    return done;
  }
}
