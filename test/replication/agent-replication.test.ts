/**
 * The facade across two coordinators sharing a real redis-server and S3 (s3rver): resume on another
 * coordinator, stale local copies, exclusion, fencing.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAgentReplication, type AgentReplication } from "../../services/replication/agent-replication.js";
import { leaseKey } from "../../services/replication/agent-lease.js";
import { createReplicationS3Client, readGenerationMarker } from "../../services/replication/generation-marker.js";
import { compileS3Settings } from "../../services/replication/replication-options.js";
import { closeValkey, createValkeyClient } from "../../services/cluster/valkey-client.js";
import { silentLogger } from "../../services/shared/logger.js";
import { startRedis, type RedisServer } from "../helpers/redis-server.js";
import { AgentWriter, readAgent, startReplicationFixture, waitFor, type ReplicationFixture } from "./replication-fixture.js";

describe("createAgentReplication with leases (redis-server + s3rver + Litestream)", () => {
  let fx: ReplicationFixture;
  let server: RedisServer;
  const lost: { coordinator: string; agentId: string; reason: string }[] = [];
  let a: AgentReplication;
  let b: AgentReplication;
  const make = (coordinatorId: string, more: { finalSyncTimeoutMs?: number } = {}) =>
    createAgentReplication({
      s3: fx.settings,
      redis: server.url,
      coordinatorId,
      leaseTtlMs: 1500,
      onLeaseLost: (agentId, reason) => lost.push({ coordinator: coordinatorId, agentId, reason }),
      logger: silentLogger,
      configDir: path.join(fx.root, coordinatorId, "litestream"),
      ...more,
    });

  beforeAll(async () => {
    fx = await startReplicationFixture();
    server = await startRedis();
    a = make("coord-a");
    b = make("coord-b");
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await server.stop();
    await fx.cleanup();
  });

  async function session(replication: AgentReplication, coordinator: string, agentId: string, turns: string[]): Promise<{ restored: boolean }> {
    const dir = fx.agentDir(coordinator, agentId);
    const prepared = await replication.prepare(agentId, dir);
    const writer = new AgentWriter(dir);
    if (!prepared.restored && writer.store.state.version() === 0) writer.init();
    await replication.track(agentId, dir);
    for (const turn of turns) writer.writeTurn(turn);
    const { synced } = await replication.release(agentId);
    writer.close();
    expect(synced).toBe(true);
    return prepared;
  }

  /**
   * While S3 is away, coord-b cannot take an agent whose last writes another coordinator is still
   * uploading (AlreadyExists); once S3 is back and the upload done, it restores all of `inbound`.
   */
  async function takenOverOnceUploaded(agentId: string, inbound: string[]): Promise<void> {
    const dir = fx.agentDir("coord-b", agentId);
    const refused = await b.prepare(agentId, dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.AlreadyExists);
    await fx.s3.resume();
    // The holder uploads in the background once S3 answers again (Litestream retries on its own clock, slow
    // on a loaded machine); until then every attempt is refused. Bounded by time, not by a count of tries.
    const giveUpAt = Date.now() + 75_000;
    for (;;) {
      const prepared = await b.prepare(agentId, dir).catch((err: unknown) => {
        if (!(err instanceof ConnectError && err.code === Code.AlreadyExists) || Date.now() > giveUpAt) throw err;
        return undefined;
      });
      if (!prepared) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        continue;
      }
      expect(prepared).toEqual({ restored: true });
      break;
    }
    expect(readAgent(dir).inbound).toEqual(inbound);
    await b.release(agentId);
  }

  it("resumes an agent on another coordinator, and refreshes a stale local copy", async () => {
    expect(await session(a, "coord-a", "roamer", ["a1", "a2"])).toEqual({ restored: false });
    expect(await session(b, "coord-b", "roamer", ["b1"])).toEqual({ restored: true });
    // coord-a still has its old copy, but coord-b wrote the agent since: restore, keep the old copy aside.
    expect(await session(a, "coord-a", "roamer", ["a3"])).toEqual({ restored: true });
    expect(readAgent(fx.agentDir("coord-a", "roamer")).inbound).toEqual(["in a1", "in a2", "in b1", "in a3"]);
    const aside = fs.readdirSync(path.join(fx.root, "coord-a", "agents")).filter((name) => name.startsWith("roamer.stale-"));
    expect(aside).toHaveLength(1);
    expect(readAgent(path.join(fx.root, "coord-a", "agents", aside[0] as string)).inbound).toEqual(["in a1", "in a2"]);
    // coord-a wrote last: its local copy is used as is.
    expect(await session(a, "coord-a", "roamer", ["a4"])).toEqual({ restored: false });
  }, 90_000);

  it("a stale local copy is found even when Valkey lost the last-writer key (restarted empty): the replica's marker names the writer", async () => {
    expect(await session(a, "coord-a", "forgotten", ["a1"])).toEqual({ restored: false });
    expect(await session(b, "coord-b", "forgotten", ["b1"])).toEqual({ restored: true });
    const valkey = createValkeyClient(server.url);
    try {
      expect(await valkey.del("podium:agent-writer:forgotten")).toBe(1);
    } finally {
      await closeValkey(valkey);
    }
    // coord-a's copy lacks b1; trusting it would drop what coord-b acknowledged.
    expect(await session(a, "coord-a", "forgotten", ["a2"])).toEqual({ restored: true });
    expect(readAgent(fx.agentDir("coord-a", "forgotten")).inbound).toEqual(["in a1", "in b1", "in a2"]);
  }, 90_000);

  it("a new session re-opens the generation marker before it uploads: a crash cannot leave it naming an old generation", async () => {
    await session(a, "coord-a", "reopened", ["r1"]);
    const client = createReplicationS3Client(compileS3Settings(fx.settings));
    try {
      const released = await readGenerationMarker(client, compileS3Settings(fx.settings), "reopened");
      expect(released?.positions).toBeDefined(); // clean release: "restore exactly this generation"
      const dir = fx.agentDir("coord-a", "reopened");
      await a.prepare("reopened", dir); // the local copy is current: no restore
      await a.track("reopened", dir);
      const open = await readGenerationMarker(client, compileS3Settings(fx.settings), "reopened");
      expect(open?.positions).toBeUndefined(); // a crash from here on is an unclean loss, restored from the newest generation
      await a.release("reopened");
    } finally {
      client.destroy();
    }
  }, 60_000);

  it("refuses to prepare an agent another coordinator holds", async () => {
    const dir = fx.agentDir("coord-a", "held");
    await a.prepare("held", dir);
    const started = Date.now();
    const err = await b.prepare("held", fx.agentDir("coord-b", "held")).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.AlreadyExists);
    expect(Date.now() - started).toBeLessThan(2500);
    expect(a.holds("held")).toBe(true);
    expect(b.holds("held")).toBe(false);
    await a.release("held");
  });

  it("S3 away at release: the last writes keep uploading in the background under the lease; another coordinator gets them once S3 is back, this one takes over at once", async () => {
    const c = make("coord-c", { finalSyncTimeoutMs: 1000 });
    /** A session on coord-c whose last turn is written while S3 is away; released unsynced. */
    const stranded = async (agentId: string, first: string, last: string): Promise<void> => {
      const dir = fx.agentDir("coord-c", agentId);
      await c.prepare(agentId, dir);
      const writer = new AgentWriter(dir);
      if (writer.store.state.version() === 0) writer.init();
      await c.track(agentId, dir);
      writer.writeTurn(first);
      await waitFor(() => c.status(agentId)?.lagMs === 0 && c.status(agentId)?.databases.every((d) => d.position) === true, 15_000, "the first turn in S3");
      await fx.s3.pause();
      writer.writeTurn(last);
      expect(await c.release(agentId)).toEqual({ synced: false });
      writer.close();
    };
    try {
      await stranded("stranded", "c1", "c2");
      // Another coordinator cannot restore the agent without c2 meanwhile: the lease stays on coord-c.
      await takenOverOnceUploaded("stranded", ["in c1", "in c2"]);

      // The same coordinator preparing the agent again takes over from the upload at once, with its local copy
      // (S3 still away: this session cannot replicate, track() would refuse, so it is released untracked).
      await stranded("retaken", "r1", "r2");
      expect(await c.prepare("retaken", fx.agentDir("coord-c", "retaken"))).toEqual({ restored: false });
      expect(readAgent(fx.agentDir("coord-c", "retaken")).inbound).toEqual(["in r1", "in r2"]);
      await c.release("retaken");
      await fx.s3.resume();
      const dir = fx.agentDir("coord-c", "retaken");
      expect(await c.prepare("retaken", dir)).toEqual({ restored: false });
      const writer = new AgentWriter(dir);
      await c.track("retaken", dir);
      writer.writeTurn("r3");
      await waitFor(() => c.status("retaken")?.lagMs === 0 && c.status("retaken")?.databases.every((d) => d.position) === true, 30_000, "the session in S3");
      expect(await c.release("retaken")).toEqual({ synced: true });
      writer.close();
      expect(await session(b, "coord-b", "retaken", ["b1"])).toEqual({ restored: true });
      expect(readAgent(fx.agentDir("coord-b", "retaken")).inbound).toEqual(["in r1", "in r2", "in r3", "in b1"]);
    } finally {
      await fx.s3.resume();
      await c.close();
    }
  }, 180_000);

  it("fences an agent whose lease was taken: onLeaseLost, Litestream stopped, no more writes allowed", async () => {
    const dir = fx.agentDir("coord-a", "fenced");
    await a.prepare("fenced", dir);
    const writer = new AgentWriter(dir);
    writer.init();
    await a.track("fenced", dir);
    await waitFor(() => a.status("fenced")?.databases.every((d) => d.position) === true, 15_000, "first replication");
    const redis = createValkeyClient(server.url);
    await redis.set(leaseKey("fenced"), "coord-b:takeover", "PX", 10_000);
    await closeValkey(redis);
    await waitFor(() => lost.some((l) => l.agentId === "fenced"), 3000, "onLeaseLost");
    // Only this agent's: a background upload of an earlier test may lose its lease meanwhile on a loaded machine.
    expect(lost.filter((l) => l.agentId === "fenced")).toEqual([{ coordinator: "coord-a", agentId: "fenced", reason: "taken over by coordinator coord-b" }]);
    expect(a.holds("fenced")).toBe(false);
    expect(a.status("fenced")?.state).toBe("fenced");
    expect(await a.release("fenced")).toEqual({ synced: false });
    writer.close();
  }, 30_000);
  it("a lease that lapses (Valkey away) stops the agent, then its last writes are uploaded under the lease taken again, in the background while S3 is away", async () => {
    const d = make("coord-d", { finalSyncTimeoutMs: 1000 });
    try {
      const dir = fx.agentDir("coord-d", "lapsed");
      await d.prepare("lapsed", dir);
      const writer = new AgentWriter(dir);
      writer.init();
      await d.track("lapsed", dir);
      writer.writeTurn("d1");
      await waitFor(() => d.status("lapsed")?.lagMs === 0 && d.status("lapsed")?.databases.every((db) => db.position) === true, 15_000, "d1 in S3");
      // S3 and Valkey away: d2 cannot be uploaded, and the lease lapses.
      await fx.s3.pause();
      await server.pause();
      writer.writeTurn("d2");
      await waitFor(() => lost.some((l) => l.coordinator === "coord-d" && l.agentId === "lapsed"), 10_000, "the lease to lapse");
      expect(lost.find((l) => l.coordinator === "coord-d")?.reason).toMatch(/^not renewed within 1500 ms$/);
      // Valkey comes back (empty): nobody else took the agent, so coord-d takes the lease again; S3 is still
      // away, so it keeps uploading d2 in the background under that lease, and no one else may restore it yet.
      await server.restart();
      expect(await d.release("lapsed")).toEqual({ synced: false }); // the instance was stopped (fenced) all the same
      writer.close();
      await takenOverOnceUploaded("lapsed", ["in d1", "in d2"]);
    } finally {
      await fx.s3.resume();
      await d.close();
    }
  }, 180_000);
});
