/**
 * What replication costs an instance's life cycle, through the real gateway (podium dev, echo-ts),
 * against a baseline without replication measured in the same run (same S3 endpoint: s3rver):
 * - create->ready of a new agent (generated id: no S3 lookup), of a named agent that is not in S3 yet
 *   (restore lookup: `litestream restore -if-replica-exists` of four databases), and of an agent whose
 *   local copy is gone (restored from S3 after a clean release elsewhere);
 * - stop (DELETE) -> answered: with replication the final sync to S3 runs after the instance ended (the
 *   next create of the same agent waits for it); each run pauses SETTLE_MS so creates do not overlap it.
 * Run: node --import tsx bench/replicated-lifecycle-bench.ts
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { createDevServer, type DevServer } from "../services/dev/create-dev-server.js";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import { silentLogger } from "../services/shared/logger.js";
import { startS3 } from "../test/helpers/s3-server.js";
import { round, summarize, type BenchResults } from "./bench-util.js";

const RUNS = 10;
const SETTLE_MS = 1500;

async function call(server: DevServer, method: string, urlPath: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(server.url + urlPath, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (res.status >= 300) throw new Error(`${method} ${urlPath}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** create -> ready, then stop; returns both durations (ms). */
async function lifecycle(server: DevServer, agentId?: string): Promise<{ create: number; stop: number }> {
  const start = performance.now();
  const created = await call(server, "POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0@local", ...(agentId ? { agent_id: agentId } : {}) });
  const create = performance.now() - start;
  const stopStart = performance.now();
  await call(server, "DELETE", `/api/v1/instances/${String(created.instance_id)}`);
  return { create, stop: performance.now() - stopStart };
}

async function series(label: string, server: DevServer, agentIds: (n: number) => string | undefined, before?: (n: number) => void): Promise<BenchResults> {
  const creates: number[] = [];
  const stops: number[] = [];
  for (let n = 0; n < RUNS; n++) {
    before?.(n);
    const { create, stop } = await lifecycle(server, agentIds(n));
    creates.push(create);
    stops.push(stop);
    // Let the final sync of the stopped agent finish (it runs after DELETE answered), so creates do not overlap it.
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  }
  return { [`${label}CreateP50Ms`]: round(summarize(creates).p50), [`${label}StopP50Ms`]: round(summarize(stops).p50) };
}

export async function runReplicatedLifecycleBench(): Promise<BenchResults> {
  const s3 = await startS3();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-"));
  const start = (name: string, replicated: boolean) =>
    createDevServer({
      port: 0,
      dataDir: path.join(root, name),
      agentsDir: path.join(REPO_ROOT, "examples"),
      logger: silentLogger,
      // A spawn per create in both, so the difference is replication's alone.
      coordinator: {
        warmRunners: 0,
        ...(replicated ? { replication: { s3: { bucket: s3.bucket, endpoint: s3.endpoint, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } } } } : {}),
      },
    });
  const plain = await start("plain", false);
  const replicated = await start("replicated", true);
  try {
    const results: BenchResults = {
      ...(await series("baseline", plain, () => undefined)),
      ...(await series("replicatedNew", replicated, () => undefined)),
      ...(await series("replicatedNamedNew", replicated, (n) => `bench-named-${n}`)),
      // The agents of the previous series are in S3 (clean release): lose the local copy, resume.
      ...(await series(
        "replicatedResume",
        replicated,
        (n) => `bench-named-${n}`,
        (n) => fs.rmSync(path.join(root, "replicated", "agents", `bench-named-${n}`), { recursive: true, force: true }),
      )),
    };
    results.replicatedNewCreateRatio = round(results.replicatedNewCreateP50Ms / results.baselineCreateP50Ms, 2);
    results.replicatedResumeCreateRatio = round(results.replicatedResumeCreateP50Ms / results.baselineCreateP50Ms, 2);
    return results;
  } finally {
    await replicated.close();
    await plain.close();
    await s3.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runReplicatedLifecycleBench().then(
    (result) => {
      for (const [key, value] of Object.entries(result)) console.log(`${key.padEnd(36)} ${value}`);
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
