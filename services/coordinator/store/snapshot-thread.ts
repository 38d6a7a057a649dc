/**
 * The one snapshot thread of the process: builds state snapshots of large states off the main thread.
 * Serializing and compressing a 50 MiB state takes ~1 s of CPU; on the main thread that stalled every
 * agent of the coordinator. The thread is started on first use and never holds the process open: a
 * process that ends with a build in flight loses only that snapshot (the patches it covers are stored).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Worker } from "node:worker_threads";
import { startModuleWorker } from "../../shared/module-worker.js";
import type { BuiltSnapshot, SnapshotJob } from "./snapshot-build.js";

type Reply = { id: number; built: BuiltSnapshot } | { id: number; error: string };

export class SnapshotThread {
  private static current: SnapshotThread | undefined;
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve(built: BuiltSnapshot): void; reject(err: Error): void }>();
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
      if ("built" in reply) waiter.resolve(reply.built);
      else waiter.reject(new ConnectError(`snapshot build failed: ${reply.error}`, Code.Internal));
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

  /** Builds the snapshot `job` describes; the job's buffers are moved to the thread, not copied. */
  build(job: SnapshotJob): Promise<BuiltSnapshot> {
    const id = this.nextId++;
    const built = new Promise<BuiltSnapshot>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    // Parts that own their whole buffer move to the thread; others (slices of a pooled buffer) are copied.
    const transfer = (job.base?.parts ?? []).filter((part) => part.byteOffset === 0 && part.byteLength === part.buffer.byteLength).map((part) => part.buffer as ArrayBuffer);
    this.worker.postMessage({ id, job }, [...new Set(transfer)]);
    return built;
  }
}
