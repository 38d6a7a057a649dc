/**
 * Entry of the upload keeper's process (upload-keeper.ts spawns it; upload-keeper-process.ts is the logic).
 * Configuration: PODIUM_UPLOAD_KEEPER (JSON, see UploadKeeperConfig), never argv (it holds Valkey's password).
 */
import { Redis } from "ioredis";
import { runUploadKeeper } from "./upload-keeper-process.js";
import type { UploadKeeperConfig } from "./upload-keeper.js";

const config = JSON.parse(process.env.PODIUM_UPLOAD_KEEPER ?? "{}") as UploadKeeperConfig;
delete process.env.PODIUM_UPLOAD_KEEPER;
// Its coordinator reads stderr; once the coordinator is gone, what is written there is dropped.
process.stderr.on("error", () => undefined);
const log = (level: "info" | "warn", msg: string, fields: Record<string, unknown> = {}) => {
  process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
};
const redis = new Redis({ ...config.redis, lazyConnect: true, maxRetriesPerRequest: 1, commandTimeout: 1000, retryStrategy: (n: number) => Math.min(n * 50, 500) });
redis.on("error", () => undefined); // commands report their own failures
try {
  await runUploadKeeper({ input: process.stdin, redis, keyPrefix: config.keyPrefix, owner: `${config.coordinatorId}/${process.pid}`, orphanLimitMs: config.orphanLimitMs, log });
} finally {
  redis.disconnect();
}
process.exit(0);
