/** The snapshot thread's code (snapshot-thread.ts): builds one snapshot per message, in order. */
import { parentPort } from "node:worker_threads";
import { buildSnapshot, type SnapshotJob } from "./snapshot-build.js";

parentPort?.on("message", (message: { id: number; job: SnapshotJob }) => {
  try {
    const built = buildSnapshot(message.job);
    // A fresh copy whose whole buffer can move to the other thread without copying again.
    const data = new Uint8Array(built.data);
    parentPort?.postMessage({ id: message.id, built: { ...built, data } }, [data.buffer]);
  } catch (err) {
    parentPort?.postMessage({ id: message.id, error: err instanceof Error ? err.message : String(err) });
  }
});
