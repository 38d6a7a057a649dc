/**
 * Failures with real processes: a coordinator killed with SIGKILL (no deregistration) leaves the
 * directory within TTL + refresh; Valkey going away gives quick Unavailable errors, and when it comes
 * back (empty: no persistence) registrations and mappings reappear by themselves.
 */
import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { startRedis, type RedisServer } from "../helpers/redis-server.js";
import { CoordinatorRegistration } from "../../services/cluster/coordinator-registration.js";
import { ValkeyCoordinatorDirectory } from "../../services/cluster/valkey-directory.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import { captureLogger, fakeCoordinator, routerConnector, sleep, waitFor, type FakeCoordinator } from "./cluster-test-utils.js";

const FIXTURE = path.join(REPO_ROOT, "test/cluster/fixtures/registration-process.ts");

let redis: RedisServer;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await redis.stop();
});

function spawnRegistration(args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", FIXTURE, ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    }
  });
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`registration process did not start:\n${output}`)), 20_000);
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("registered")) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`registration process exited with ${code}:\n${output}`));
    });
  });
}

function newDirectory(fakes: Map<string, FakeCoordinator>) {
  const log = captureLogger();
  const directory = new ValkeyCoordinatorDirectory({ redis: redis.url, connect: routerConnector(fakes).connect, logger: log.logger });
  cleanups.push(() => directory.close());
  const lost: { id: string; reason: string; at: number }[] = [];
  directory.onCoordinatorLost((id, reason) => lost.push({ id, reason, at: Date.now() }));
  return { directory, lost, log };
}

async function codeOf(promise: Promise<unknown>): Promise<{ code: string; message: string; ms: number }> {
  const start = Date.now();
  try {
    await promise;
    return { code: "OK", message: "", ms: Date.now() - start };
  } catch (error) {
    const e = ConnectError.from(error);
    return { code: Code[e.code], message: e.rawMessage, ms: Date.now() - start };
  }
}

describe("cluster failures", () => {
  it("a coordinator killed with SIGKILL leaves the directory within TTL + refresh (<= 5 s)", async () => {
    const fakes = new Map([
      ["coord-k", fakeCoordinator("coord-k")],
      ["coord-s", fakeCoordinator("coord-s")],
    ]);
    const { directory, lost } = newDirectory(fakes);
    const victim = await spawnRegistration([redis.url, "coord-k", "http://coord-k.test:7100", "inst-k", "agent-k"]);
    await spawnRegistration([redis.url, "coord-s", "http://coord-s.test:7100"]);
    await waitFor(() => directory.members().length === 2, "both coordinators");
    expect((await directory.locateInstance("inst-k")).id).toBe("coord-k");

    const exited = new Promise((resolve) => victim.once("exit", resolve));
    const killedAt = Date.now();
    victim.kill("SIGKILL");
    await exited;
    await waitFor(() => lost.length > 0, "the directory to drop coord-k", 10_000, 5);
    const detectionMs = (lost[0]?.at ?? 0) - killedAt;
    console.log(`failure detection: coord-k dropped ${detectionMs} ms after SIGKILL (heartbeat 1000 ms, TTL 3000 ms, refresh 1000 ms)`);
    expect(lost).toEqual([expect.objectContaining({ id: "coord-k", reason: "expired" })]);
    expect(detectionMs).toBeLessThanOrEqual(5000);

    expect(directory.members().map((m) => m.coordinatorId)).toEqual(["coord-s"]);
    const gone = await codeOf(directory.locateInstance("inst-k"));
    expect(gone.code).toBe("NotFound");
    expect(gone.message).toMatch(/coordinator coord-k, which is gone/);
    for (let i = 0; i < 20; i++) expect((await directory.place()).id).toBe("coord-s");
  }, 40_000);

  it("Valkey down -> quick Unavailable, nothing crashes; Valkey back (empty) -> everything re-registers by itself", async () => {
    const fakes = new Map([
      ["coord-a", fakeCoordinator("coord-a")],
      ["coord-b", fakeCoordinator("coord-b")],
    ]);
    const { directory, lost, log: directoryLog } = newDirectory(fakes);
    const registrationLogs = [captureLogger(), captureLogger()];
    const registrations = ["coord-a", "coord-b"].map((id, i) => {
      const fake = fakes.get(id) as FakeCoordinator;
      const registration = new CoordinatorRegistration({
        redis: redis.url,
        coordinatorId: id,
        address: `http://${id}.test:7100`,
        info: () => fake.load(),
        logger: registrationLogs[i]?.logger,
      });
      cleanups.push(() => registration.stop());
      return registration;
    });
    for (const r of registrations) await r.start();
    await registrations[0]?.recordInstance("inst-a", "agent-a");
    await waitFor(() => directory.members().length === 2, "both coordinators");
    expect((await directory.locateInstance("inst-a")).id).toBe("coord-a");

    await registrations[0]?.recordInstance("inst-unseen", "agent-unseen");

    await redis.pause();
    await sleep(100);
    // An instance located before goes on being found (it never moves); an instance never located needs Valkey.
    expect((await directory.locateInstance("inst-a")).id).toBe("coord-a");
    const locate = await codeOf(directory.locateInstance("inst-unseen"));
    const record = await codeOf(directory.recordInstance({ instanceId: "inst-z", agentId: "agent-z", coordinatorId: "coord-a" }));
    console.log(`Valkey down: locateInstance -> ${locate.code} in ${locate.ms} ms ("${locate.message}"); recordInstance -> ${record.code} in ${record.ms} ms`);
    expect(locate.code).toBe("Unavailable");
    expect(locate.message).toMatch(/Valkey/);
    expect(locate.ms).toBeLessThan(1500);
    expect(record.code).toBe("Unavailable");
    const place = await codeOf(directory.place());
    expect(place.code).toBe("Unavailable");
    expect(place.ms).toBeLessThan(1500);
    // Heartbeats keep failing for a while; each registration reports the outage once, not per beat.
    await sleep(2500);
    for (const r of registrationLogs) expect(r.count(/heartbeat failed/)).toBe(1);
    // The coordinator records an instance during the outage: not lost, written when Valkey returns.
    await registrations[1]?.recordInstance("inst-b", "agent-b");

    const restartedAt = Date.now();
    await redis.restart();
    await waitFor(
      async () => {
        if (directory.members().length !== 2 || !directory.healthy) return false;
        const a = await directory.locateInstance("inst-a").then(
          (c) => c.id,
          () => "",
        );
        const b = await directory.locateInstance("inst-b").then(
          (c) => c.id,
          () => "",
        );
        return a === "coord-a" && b === "coord-b";
      },
      "registrations and mappings to reappear",
      15_000,
      50,
    );
    console.log(`Valkey restarted empty: registrations and instance mappings back after ${Date.now() - restartedAt} ms`);
    expect((await directory.place()).id).toMatch(/^coord-[ab]$/);
    expect((await directory.locateAgent("agent-a")).id).toBe("coord-a");
    // A Valkey blip is not a coordinator failure: no stream would have been cut.
    expect(lost).toEqual([]);
    for (const r of registrationLogs) expect(r.count(/heartbeats restored/)).toBe(1);
    expect(directoryLog.count(/coordinator lost/)).toBe(0);
  }, 40_000);

  it("a heartbeat that failed although its write reached a Valkey restarted empty still rewrites the instance mappings", async () => {
    const registration = new CoordinatorRegistration({
      redis: redis.url,
      coordinatorId: "coord-a",
      address: "http://coord-a.test:7100",
      info: () => fakeCoordinator("coord-a").load(),
      logger: captureLogger().logger,
    });
    cleanups.push(() => registration.stop());
    await registration.start();
    await registration.recordInstance("inst-a", "agent-a");
    const peek = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    cleanups.push(async () => peek.disconnect());
    const heartbeatKey = "podium:coordinator:coord-a";
    const heartbeat = await peek.get(heartbeatKey);
    expect(heartbeat).not.toBeNull();
    await redis.pause();
    await sleep(1500); // at least one beat fails
    await redis.restart();
    // As if the failed beat's SET had run on the new Valkey: the next beat finds its own heartbeat there.
    await peek.set(heartbeatKey, heartbeat as string, "PX", 10_000);
    await waitFor(async () => (await peek.get("podium:instance:inst-a")) !== null, "the instance mapping to be written again", 10_000, 50);
    expect(JSON.parse((await peek.get("podium:instance:inst-a")) as string)).toEqual({ coordinatorId: "coord-a", agentId: "agent-a" });
    expect(await peek.get("podium:agent:agent-a")).toBe("coord-a");
  }, 40_000);

  it("Valkey restarted (empty) faster than one refresh: no coordinator is declared lost", async () => {
    const fakes = new Map([
      ["coord-a", fakeCoordinator("coord-a")],
      ["coord-b", fakeCoordinator("coord-b")],
    ]);
    const { directory, lost, log: directoryLog } = newDirectory(fakes);
    const registrations = ["coord-a", "coord-b"].map((id) => {
      const fake = fakes.get(id) as FakeCoordinator;
      const registration = new CoordinatorRegistration({ redis: redis.url, coordinatorId: id, address: `http://${id}.test:7100`, info: () => fake.load(), logger: captureLogger().logger });
      cleanups.push(() => registration.stop());
      return registration;
    });
    for (const r of registrations) await r.start();
    await waitFor(() => directory.members().length === 2, "both coordinators");
    for (let round = 0; round < 3; round++) {
      await redis.restart(); // no refresh fails in between: the keys are simply gone for a moment
      await waitFor(
        async () =>
          directory.healthy &&
          (await directory.place().then(
            () => true,
            () => false,
          )),
        "a healthy view",
        15_000,
        50,
      );
      await sleep(1500); // more than a refresh period, less than the grace
    }
    await waitFor(() => directory.members().length === 2, "both coordinators", 15_000, 50);
    expect(lost).toEqual([]);
    expect(directoryLog.count(/coordinator lost/)).toBe(0);
  }, 60_000);

  it("a coordinator restarted with the same id replaces its old self at once (reason: restarted)", async () => {
    const fakes = new Map([["coord-r", fakeCoordinator("coord-r")]]);
    const { directory, lost } = newDirectory(fakes);
    const first = await spawnRegistration([redis.url, "coord-r", "http://coord-r.test:7100", "inst-old", "agent-r"]);
    await waitFor(() => directory.members().length === 1, "coord-r");
    const firstStartedAt = directory.members()[0]?.startedAt ?? 0;
    const exited = new Promise((resolve) => first.once("exit", resolve));
    first.kill("SIGKILL");
    await exited;
    const restartedAt = Date.now();
    await spawnRegistration([redis.url, "coord-r", "http://coord-r.test:7101"]);
    await waitFor(() => lost.length > 0, "the old process to be dropped", 10_000, 5);
    console.log(`restart with the same id: old process dropped ${(lost[0]?.at ?? 0) - restartedAt} ms after the new one was spawned (TTL not awaited)`);
    expect(lost).toEqual([expect.objectContaining({ id: "coord-r", reason: "restarted" })]);
    await waitFor(() => directory.members()[0]?.address === "http://coord-r.test:7101", "the new address");
    expect(directory.members()[0]?.startedAt).toBeGreaterThan(firstStartedAt);
    // The dead process's instance is no longer in the coordinator's live set (its mapping keeps the ended retention).
    const admin = new Redis(redis.url);
    try {
      expect(await admin.smembers("podium:coordinator:coord-r:instances")).toEqual([]);
      expect(await admin.pttl("podium:instance:inst-old")).toBeGreaterThan(0);
    } finally {
      admin.disconnect();
    }
  }, 40_000);

  it("a gateway and a coordinator started while Valkey is down wait it out and connect by themselves", async () => {
    await redis.pause();
    const fakes = new Map([["coord-late", fakeCoordinator("coord-late")]]);
    const { directory } = newDirectory(fakes);
    const log = captureLogger();
    const registration = new CoordinatorRegistration({
      redis: redis.url,
      coordinatorId: "coord-late",
      address: "http://late.test:7100",
      info: () => (fakes.get("coord-late") as FakeCoordinator).load(),
      logger: log.logger,
    });
    cleanups.push(() => registration.stop());
    const started = Date.now();
    await registration.start(); // does not throw: logs and keeps trying
    await directory.ready();
    console.log(`start-up with Valkey down: registration.start() + directory.ready() returned after ${Date.now() - started} ms`);
    expect(log.count(/heartbeat failed/)).toBe(1);
    expect((await codeOf(directory.place())).code).toBe("Unavailable");
    await redis.restart();
    const ms = await waitFor(() => directory.members().length === 1 && directory.healthy, "coord-late to appear", 10_000, 20);
    console.log(`... and both connected ${ms} ms after Valkey appeared`);
    expect((await directory.place()).id).toBe("coord-late");
  }, 40_000);
});
