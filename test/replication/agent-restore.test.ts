/**
 * Replicate an agent written through the real stores with the real Litestream to a real S3 API
 * (s3rver), lose the local directory, restore it elsewhere; point-in-time forks.
 */
import fs from "node:fs";
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAgentReplication, type AgentReplication } from "../../services/replication/agent-replication.js";
import { restoreAgent } from "../../services/replication/agent-restore.js";
import { silentLogger } from "../../services/shared/logger.js";
import { AgentWriter, readAgent, sleep, startReplicationFixture, waitFor, type ReplicationFixture } from "./replication-fixture.js";

describe("agent replication and restore (Litestream + s3rver)", () => {
  let fx: ReplicationFixture;
  let replication: AgentReplication;
  beforeAll(async () => {
    fx = await startReplicationFixture();
    replication = createAgentReplication({ s3: fx.settings, coordinatorId: "coord-a", onLeaseLost: () => undefined, logger: silentLogger, configDir: `${fx.root}/litestream` });
  });
  afterAll(async () => {
    await replication.close();
    await fx.cleanup();
  });

  it("restores every message, state version, log line and file iteration on another host", async () => {
    const dirA = fx.agentDir("host-a", "agent-1");
    expect(await replication.prepare("agent-1", dirA)).toEqual({ restored: false });
    const writer = new AgentWriter(dirA);
    writer.init();
    await replication.track("agent-1", dirA);
    for (let i = 0; i < 20; i++) writer.writeTurn(`t${i}`);

    await waitFor(() => replication.status("agent-1")?.lagMs === 0 && replication.status("agent-1")?.databases.every((d) => d.position) === true, 15_000, "replication to catch up");
    const status = replication.status("agent-1");
    expect(status).toMatchObject({ agentId: "agent-1", state: "replicating", lagMs: 0, restarts: 0 });
    expect(status?.generation).toMatch(/^[0-9a-f]{16}$/);
    expect(status?.position).toMatch(/^[0-9a-f]{16}\/[0-9a-f]{8}:\d+$/);
    expect(status?.databases.map((d) => d.db)).toEqual(["messages.db", "state.db", "logs.db", "chronicle.db"]);
    expect(Date.now() - (status?.lastSyncAt ?? 0)).toBeLessThan(15_000);

    // Writes right before the stop are covered by release() (catch-up + Litestream's final sync).
    writer.writeTurn("last");
    expect(await replication.release("agent-1")).toEqual({ synced: true });
    writer.close();
    const before = readAgent(dirA);
    expect(before.inbound).toHaveLength(21);
    fs.rmSync(dirA, { recursive: true });

    const dirB = fx.agentDir("host-b", "agent-1");
    expect(await replication.prepare("agent-1", dirB)).toEqual({ restored: true });
    await replication.release("agent-1");
    const after = readAgent(dirB);
    expect(after).toEqual(before);
    expect(after.version).toBe(22);
    expect(after.iterations).toBe(21);
    expect(fs.readFileSync(`${dirB}/workspace/turn-last.txt`, "utf8")).toBe("content of last\n");
  }, 60_000);

  it("reports restored:false for an agent that was never replicated", async () => {
    const dir = fx.agentDir("host-a", "brand-new");
    const result = await restoreAgent({ agentId: "brand-new", targetDir: dir, s3: fx.settings });
    expect(result.restored).toBe(false);
    expect(result.databases.every((d) => !d.restored)).toBe(true);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it("forks an agent as it was at a point in time", async () => {
    const dir = fx.agentDir("host-a", "agent-pit");
    await replication.prepare("agent-pit", dir);
    const writer = new AgentWriter(dir);
    writer.init();
    await replication.track("agent-pit", dir);
    for (let i = 0; i < 5; i++) writer.writeTurn(`early${i}`);
    await waitFor(() => replication.status("agent-pit")?.lagMs === 0 && replication.status("agent-pit")?.databases.every((d) => d.position) === true, 15_000, "early writes replicated");
    await sleep(1500); // S3 timestamps: keep T clear of both sides
    const t = new Date();
    await sleep(1500);
    for (let i = 0; i < 5; i++) writer.writeTurn(`late${i}`);
    await replication.release("agent-pit");
    writer.close();

    const forkDir = fx.agentDir("host-b", "agent-pit-fork");
    const fork = await replication.fork({ sourceAgentId: "agent-pit", targetAgentId: "agent-pit-fork", targetDir: forkDir, timestamp: t });
    expect(fork.restored).toBe(true);
    const forked = readAgent(forkDir);
    expect(forked.inbound).toEqual([0, 1, 2, 3, 4].map((i) => `in early${i}`));
    expect(Object.keys(forked.state.turns as object)).toEqual([0, 1, 2, 3, 4].map((i) => `early${i}`));
    expect(forked.files).toEqual([0, 1, 2, 3, 4].map((i) => `turn-early${i}.txt`));
    expect(readAgent(dir).inbound).toHaveLength(10); // the original is untouched

    // The fork was replicated under its own id: it resumes on a host that never saw it.
    const elsewhere = fx.agentDir("host-c", "agent-pit-fork");
    const resumed = await restoreAgent({ agentId: "agent-pit-fork", targetDir: elsewhere, s3: fx.settings });
    expect(resumed.restored).toBe(true);
    expect(readAgent(elsewhere)).toEqual(forked);

    // A time before the agent existed has nothing to restore.
    const err = await restoreAgent({ agentId: "agent-pit", targetDir: fx.agentDir("host-c", "too-early"), s3: fx.settings, timestamp: new Date(t.getTime() - 3600_000) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
  }, 60_000);

  it("restores an agent that wrote nothing since its last upload as of now, and a stopped one as of after its stop", async () => {
    const dir = fx.agentDir("host-a", "agent-idle");
    await replication.prepare("agent-idle", dir);
    const writer = new AgentWriter(dir);
    writer.init();
    await replication.track("agent-idle", dir);
    for (let i = 0; i < 3; i++) writer.writeTurn(`idle${i}`);
    await waitFor(() => replication.status("agent-idle")?.lagMs === 0 && replication.status("agent-idle")?.databases.every((d) => d.position) === true, 15_000, "writes replicated");
    await sleep(1200); // T is a later second than the last upload: Litestream alone finds no generation spanning it
    const idle = await restoreAgent({ agentId: "agent-idle", targetDir: fx.agentDir("host-b", "idle-now"), s3: fx.settings, timestamp: new Date() });
    expect(idle.restored).toBe(true);
    expect(readAgent(fx.agentDir("host-b", "idle-now")).inbound).toEqual(["in idle0", "in idle1", "in idle2"]);

    writer.writeTurn("final");
    await replication.release("agent-idle");
    writer.close();
    await sleep(1200);
    const stopped = await restoreAgent({ agentId: "agent-idle", targetDir: fx.agentDir("host-b", "idle-stopped"), s3: fx.settings, timestamp: new Date() });
    expect(stopped.databases.every((d) => d.restored)).toBe(true);
    expect(readAgent(fx.agentDir("host-b", "idle-stopped")).inbound).toEqual(["in idle0", "in idle1", "in idle2", "in final"]);
  }, 60_000);
});
