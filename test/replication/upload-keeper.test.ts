/**
 * The upload keeper against a real redis-server and real processes standing in for Litestream: it marks
 * the agents whose Litestream outlives the coordinator until each exits, kills one that runs past its
 * limit, and the next owner's wait follows the mark. The last test runs the keeper's own process the
 * way a coordinator does (UploadKeeper), and ends its input as a coordinator's death would.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { PassThrough } from "node:stream";
import type { Redis } from "ioredis";
import { describe, it, expect, beforeAll, afterAll, afterEach } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { ClusterKeys } from "../../services/cluster/cluster-keys.js";
import { closeValkey, createValkeyClient } from "../../services/cluster/valkey-client.js";
import { parseKeeperCommand, runUploadKeeper } from "../../services/replication/upload-keeper-process.js";
import { UploadKeeper, waitForFinalUpload } from "../../services/replication/upload-keeper.js";
import { silentLogger } from "../../services/shared/logger.js";
import { startRedis, type RedisServer } from "../helpers/redis-server.js";
import { sleep } from "./replication-fixture.js";

const keys = new ClusterKeys("keeper-test:");
let server: RedisServer;
let redis: Redis;
const children: ChildProcess[] = [];

/** A stand-in for a Litestream: a process group of its own that runs until killed. */
function fakeLitestream(): ChildProcess {
  const child = spawn("sleep", ["600"], { detached: true, stdio: "ignore" });
  children.push(child);
  return child;
}

const exited = (child: ChildProcess): Promise<NodeJS.Signals | null> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.signalCode) : new Promise((resolve) => child.once("exit", (_code, signal) => resolve(signal)));

beforeAll(async () => {
  server = await startRedis();
  redis = createValkeyClient(server.url);
}, 30_000);

afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

afterAll(async () => {
  await closeValkey(redis);
  await server?.stop();
});

describe("upload keeper", () => {
  it("parses only well-formed commands", () => {
    expect(parseKeeperCommand('{"watch":"a","pid":42}')).toEqual({ watch: "a", pid: 42 });
    expect(parseKeeperCommand('{"unwatch":"a"}')).toEqual({ unwatch: "a" });
    for (const bad of ["", "{", "null", '{"watch":"a"}', '{"watch":"a","pid":1}', '{"watch":"a","pid":2.5}', "[]"]) expect(parseKeeperCommand(bad)).toBeUndefined();
  });

  it("while its coordinator lives it writes nothing; once its input ends it marks each running Litestream until that one exits", async () => {
    const input = new PassThrough();
    const [a, b] = [fakeLitestream(), fakeLitestream()];
    const done = runUploadKeeper({ input, redis, keyPrefix: keys.prefix, owner: "coord-x/1", periodMs: 200, log: () => undefined });
    input.write(`${JSON.stringify({ watch: "agent-a", pid: a.pid })}\n${JSON.stringify({ watch: "agent-b", pid: b.pid })}\n`);
    input.write(`${JSON.stringify({ watch: "agent-c", pid: fakeLitestream().pid })}\n${JSON.stringify({ unwatch: "agent-c" })}\n`);
    await sleep(300);
    expect(await redis.exists(keys.agentUploading("agent-a"), keys.agentUploading("agent-b"))).toBe(0);

    input.end(); // the coordinator died
    const marked = async () => await redis.mget(keys.agentUploading("agent-a"), keys.agentUploading("agent-b"), keys.agentUploading("agent-c"));
    for (let i = 0; i < 50 && (await marked())[0] === null; i++) await sleep(20);
    expect(await marked()).toEqual(["coord-x/1", "coord-x/1", null]);
    expect(await redis.pttl(keys.agentUploading("agent-a"))).toBeGreaterThan(0); // it expires if the keeper dies too

    a.kill("SIGKILL");
    await exited(a);
    for (let i = 0; i < 50 && (await marked())[0] !== null; i++) await sleep(20);
    expect(await marked()).toEqual([null, "coord-x/1", null]);
    // Kept past its first ttl (3 periods) while b still runs.
    await sleep(800);
    expect((await marked())[1]).toBe("coord-x/1");
    b.kill("SIGKILL");
    await done;
    expect(await marked()).toEqual([null, null, null]);
  }, 30_000);

  it("kills a Litestream still running at the limit (S3 away: it would retry forever) and clears its mark", async () => {
    const input = new PassThrough();
    const stuck = fakeLitestream();
    const done = runUploadKeeper({ input, redis, keyPrefix: keys.prefix, owner: "coord-y/1", orphanLimitMs: 500, periodMs: 100, log: () => undefined });
    input.end(`${JSON.stringify({ watch: "agent-stuck", pid: stuck.pid })}\n`);
    expect(await exited(stuck)).toBe("SIGKILL");
    await done;
    expect(await redis.exists(keys.agentUploading("agent-stuck"))).toBe(0);
  }, 30_000);

  it("a clean stop (nothing running) ends at once and writes nothing; a mark someone else set is left alone", async () => {
    await redis.set(keys.agentUploading("agent-other"), "coord-z/9", "PX", 5000);
    const input = new PassThrough();
    const done = runUploadKeeper({ input, redis, keyPrefix: keys.prefix, owner: "coord-z/1", log: () => undefined });
    input.end(`${JSON.stringify({ watch: "agent-other", pid: 999_999_999 })}\n`);
    await done;
    expect(await redis.get(keys.agentUploading("agent-other"))).toBe("coord-z/9");
    await redis.del(keys.agentUploading("agent-other"));
  });

  it("the next owner waits while the mark is there, at most its limit, and a cancelled create stops waiting", async () => {
    expect(await waitForFinalUpload(redis, keys, "agent-free", 5000)).toBeUndefined();
    await redis.set(keys.agentUploading("agent-busy"), "coord/1", "PX", 600);
    const waited = await waitForFinalUpload(redis, keys, "agent-busy", 5000);
    expect(waited).toBeGreaterThanOrEqual(500);
    await redis.set(keys.agentUploading("agent-busy"), "coord/1", "PX", 5000);
    expect(await waitForFinalUpload(redis, keys, "agent-busy", 300)).toBeLessThan(2000);
    const err = await waitForFinalUpload(redis, keys, "agent-busy", 5000, AbortSignal.abort()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Canceled);
    await redis.del(keys.agentUploading("agent-busy"));
  });

  it("runs as its own process: a coordinator's end hands the running Litestreams over to it", async () => {
    const keeper = UploadKeeper.start({ redis, keyPrefix: keys.prefix, coordinatorId: "coord-p", logger: silentLogger });
    const [a, b] = [fakeLitestream(), fakeLitestream()];
    keeper.watch("agent-pa", a.pid as number);
    keeper.watch("agent-pb", b.pid as number);
    keeper.unwatch("agent-pb"); // released: its final upload was done in the coordinator
    keeper.close(); // as the coordinator's death ends its input
    const mark = () => redis.get(keys.agentUploading("agent-pa"));
    for (let i = 0; i < 300 && (await mark()) === null; i++) await sleep(50);
    expect(await mark()).toMatch(/^coord-p\/\d+$/);
    expect(await redis.exists(keys.agentUploading("agent-pb"))).toBe(0);
    a.kill("SIGKILL");
    for (let i = 0; i < 100 && (await mark()) !== null; i++) await sleep(50);
    expect(await mark()).toBeNull();
  }, 30_000);
});
