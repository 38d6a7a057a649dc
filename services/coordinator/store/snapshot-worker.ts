/** The snapshot thread's code (snapshot-thread.ts): one job per message, in order. */
import { parentPort } from "node:worker_threads";
import { buildSnapshot, loadState, type LoadJob, type SnapshotJob } from "./snapshot-build.js";

type Request = { id: number; build: SnapshotJob } | { id: number; load: LoadJob };

parentPort?.on("message", (message: Request) => {
  try {
    if ("build" in message) {
      const built = buildSnapshot(message.build);
      // A fresh copy whose whole buffer can move to the other thread without copying again.
      const data = new Uint8Array(built.data);
      parentPort?.postMessage({ id: message.id, result: { ...built, data } }, [data.buffer]);
    } else {
      const loaded = loadState(message.load);
      parentPort?.postMessage({ id: message.id, result: loaded }, [loaded.json.buffer as ArrayBuffer, loaded.plan.text.buffer as ArrayBuffer]);
    }
  } catch (err) {
    parentPort?.postMessage({ id: message.id, error: err instanceof Error ? err.message : String(err) });
  }
});
