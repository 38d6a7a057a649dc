/** The snapshot thread's code (snapshot-thread.ts): one job per message, in order. */
import { parentPort } from "node:worker_threads";
import { loadState } from "./snapshot-build.js";
import type { SnapshotRequest } from "./snapshot-thread.js";
import { dropOldChunks, writeSnapshot } from "./snapshot-write.js";
import { checkpointFiles } from "./sqlite.js";

parentPort?.on("message", (message: SnapshotRequest & { id: number }) => {
  try {
    if ("write" in message) {
      parentPort?.postMessage({ id: message.id, result: writeSnapshot(message.write) });
    } else if ("drop" in message) {
      parentPort?.postMessage({ id: message.id, result: dropOldChunks(message.drop) });
    } else if ("checkpoint" in message) {
      checkpointFiles(message.checkpoint.files, message.checkpoint.flags);
      parentPort?.postMessage({ id: message.id, result: undefined });
    } else {
      const loaded = loadState(message.load);
      parentPort?.postMessage({ id: message.id, result: loaded }, [loaded.json.buffer as ArrayBuffer, loaded.plan.text.buffer as ArrayBuffer]);
    }
  } catch (err) {
    parentPort?.postMessage({ id: message.id, error: err instanceof Error ? err.message : String(err) });
  }
});
