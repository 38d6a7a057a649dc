/**
 * Durability across hosts, as an operator runs it: redis-server, s3rver, one gateway and coordinators
 * as separate OS processes, each coordinator replicating its agents with real Litestream
 * (--replicate-bucket). A host dies (kill -9 of the coordinator and of its Litestream processes): the
 * agent resumes on a survivor with every write older than the sync window. A partitioned owner
 * (SIGSTOP) that comes back after another coordinator took its agent over writes nothing (fencing).
 * Point-in-time restore through `podium restore`. Tests run in order on one cluster.
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { restoreAgent } from "../../services/replication/agent-restore.js";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import type { JsonObject } from "../../services/shared/json.js";
import { PODIUM_BIN, childEnv, startReplicatedCluster, until, type PodiumProcess, type TestCluster } from "../helpers/cluster-processes.js";
import type { WsClient } from "../helpers/dev-fixture.js";
import { packBundle } from "../../services/registry/bundle-archive.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

const run = promisify(execFile);
let cluster: TestCluster;
let G: string;

beforeAll(async () => {
  ({ cluster, gateway: G } = await startReplicatedCluster("durable-ts"));
}, 60_000);

afterAll(async () => {
  await cluster?.close();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Creates an instance of `agentId`; retries what the gateway answers 503/409 (it already waits up to 8 s for a dead coordinator to be declared gone). */
async function createAgent(agentId: string): Promise<{ instance: JsonObject; ms: number; attempts: string[] }> {
  const attempts: string[] = [];
  const { value, ms } = await until(
    async () => {
      const res = await cluster.api(G, "POST", "/api/v1/instances", { deployment_id: "durable-ts:1.0.0", agent_id: agentId });
      if (res.status === 201) return res.json;
      attempts.push(`${res.status} ${String((res.json.error as JsonObject | undefined)?.message ?? "").slice(0, 120)}`);
      if (res.status !== 503 && res.status !== 409) throw new Error(`create ${agentId}: ${res.status} ${JSON.stringify(res.json)}`);
      return undefined;
    },
    `an instance of ${agentId}`,
    40_000,
    200,
  );
  return { instance: value, ms, attempts };
}

/** Sends one message and waits for its turn to end (acknowledged: persisted before it was broadcast). */
async function turn(ws: WsClient, instanceId: string, text: string, delayMs = 0): Promise<number> {
  const sent = await cluster.api(G, "POST", `/api/v1/instances/${instanceId}/messages`, { content: { text, ...(delayMs ? { delay_ms: delayMs } : {}) } });
  if (sent.status !== 202) throw new Error(`send ${text}: ${sent.status} ${JSON.stringify(sent.json)}`);
  await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === sent.json.turn, 15_000);
  return Date.now();
}

/**
 * Waits until every write the agent acknowledged so far is in S3: past one WAL probe (so a write not yet
 * uploaded shows as lag), then until its coordinator reports no lag (a fixed sleep races the upload on a
 * loaded machine).
 */
async function inS3(agentId: string): Promise<void> {
  await sleep(600);
  await until(
    async () => {
      const r = await cluster.api(G, "GET", `/api/v1/agents/${agentId}/replication`);
      return r.status === 200 && r.json.state === "replicating" && r.json.lag_ms === 0 && r.json.last_sync_at ? true : undefined;
    },
    `${agentId}'s writes to reach S3`,
    30_000,
    100,
  );
}

const coordinatorOf = (instance: JsonObject): PodiumProcess => {
  const found = cluster.coordinators.find((c) => c.id === instance.coordinator_id);
  if (!found) throw new Error(`no coordinator ${String(instance.coordinator_id)}`);
  return found;
};

/** The durable data of an agent as a new instance sees it: notes (state), `complete` texts (messages), files. */
async function agentData(instanceId: string): Promise<{ notes: string[]; completes: string[]; files: string[]; messages: JsonObject[] }> {
  const state = await cluster.api(G, "GET", `/api/v1/instances/${instanceId}/state`);
  const notes = ((state.json.state as JsonObject).notes as string[]) ?? [];
  const completes: string[] = [];
  const messages: JsonObject[] = [];
  for (let after = 0; ; ) {
    const page = await cluster.api(G, "GET", `/api/v1/instances/${instanceId}/messages?after_seq=${after}&limit=1000`);
    messages.push(...(page.json.messages as JsonObject[]));
    for (const m of page.json.messages as JsonObject[]) if (m.message_type === "complete") completes.push(String((m.content as JsonObject).text));
    if (!page.json.next_after_seq) break;
    after = Number(page.json.next_after_seq);
  }
  const listed = await cluster.api(G, "GET", `/api/v1/instances/${instanceId}/files?path=notes`);
  const files = ((listed.json.entries as JsonObject[] | undefined) ?? []).map((e) => String(e.path));
  return { notes, completes, files, messages };
}

describe("replicated agents across coordinator processes (Litestream, s3rver, redis-server)", () => {
  it("a host dies (kill -9 of the coordinator and its Litestream): the agent resumes on the survivor with every write outside the sync window", async () => {
    const agentId = "durable-host-death";
    const { instance } = await createAgent(agentId);
    const home = coordinatorOf(instance);
    const instanceId = String(instance.instance_id);
    const ws = await cluster.connect(G, instanceId);
    // Steady writes for ~4 s: each turn writes a message, a state delta, a log line and a file.
    const acked: { text: string; at: number }[] = [];
    const started = Date.now();
    for (let n = 1; Date.now() - started < 4000; n++) acked.push({ text: `t${n}`, at: await turn(ws, instanceId, `t${n}`) });
    const status = await cluster.api(G, "GET", `/api/v1/agents/${agentId}/replication`);
    expect(status).toMatchObject({ status: 200, json: { agent_id: agentId, state: "replicating", coordinator_id: home.id } });

    // Host death right after the last acknowledged turn: nothing gets a chance to flush.
    const killedAt = Date.now();
    await Promise.all([home.kill(), run("pkill", ["-KILL", "-f", `${home.dataDir}/replication/`]).catch(() => undefined)]);
    ws.close();

    const resumed = await createAgent(agentId);
    const survivor = coordinatorOf(resumed.instance);
    expect(survivor.id).not.toBe(home.id);
    let data = await agentData(String(resumed.instance.instance_id));
    const texts = acked.map((a) => a.text);
    // Messages the replica holds as acknowledged but not begun run again on the survivor, after the kept
    // prefix (when the cut dropped turns before them, those are reported interrupted by the marker).
    const marker = data.messages.find((m) => m.message_type === "agent.restored");
    const queuedTurns = ((marker?.content as JsonObject | undefined)?.queued_turns as number[] | undefined) ?? [];
    if (queuedTurns.length > 0) {
      const ranAgain = (d: typeof data) => queuedTurns.every((turn) => d.messages.some((m) => m.message_type === "turn.done" && m.turn === turn && Number(m.seq) > Number(marker?.seq)));
      data = (
        await until(
          async () => {
            const d = await agentData(String(resumed.instance.instance_id));
            return ranAgain(d) ? d : undefined;
          },
          "the queued turns to run again",
          30_000,
          100,
        )
      ).value;
    }
    // What survived is a prefix of what was acknowledged, whole turns, the same in state, messages and
    // files (restore reconciles the databases, which Litestream cuts at different points).
    // notes/K.txt holds the K-th note: named by position, not by text (a turn run again after cut turns
    // writes the next position), so it is mapped through the state and the newest one is read.
    const fileIndexes = data.files.map((f) => Number(/(\d+)\.txt$/.exec(f)?.[1] ?? NaN)).sort((a, b) => a - b);
    const restored = { state: data.notes, messages: data.completes.map((t) => t.replace(/^noted /, "")), files: fileIndexes.map((k) => data.notes[k - 1] ?? `?${k}`) };
    const newest = await cluster.api(G, "GET", `/api/v1/instances/${String(resumed.instance.instance_id)}/files/notes/${fileIndexes.length}.txt`);
    expect(String((newest.json as JsonObject).content ?? "")).toBe(`${data.notes.at(-1) ?? ""}\n`);
    const rerun = queuedTurns.map((turn) => String(((data.messages.find((m) => Number(m.seq) === turn)?.content as JsonObject | undefined)?.text as string | undefined) ?? "?"));
    const windows: Record<string, number> = {};
    for (const [db, got] of Object.entries(restored)) {
      const kept = got.slice(0, got.length - rerun.length);
      // On a failure, the marker says what the restore cut (shown beside the database's tail).
      expect([db, got.slice(kept.length), got.length, marker?.content]).toEqual([db, rerun, got.length, marker?.content]);
      expect([db, kept]).toEqual([db, texts.slice(0, kept.length)]);
      expect(kept.length).toBeGreaterThan(0);
      const firstLost = acked[kept.length];
      windows[db] = firstLost ? killedAt - firstLost.at : 0;
    }
    expect(restored.messages).toEqual(restored.state);
    expect(restored.files).toEqual(restored.state);
    // Seqs the dead host may have handed out are never reused: the resumed agent continues after a gap.
    const kept = data.messages.filter((m) => m.message_type !== "agent.restored" && Number(m.seq) < Number(marker?.seq ?? 0));
    expect(marker?.content).toMatchObject({ last_replicated_seq: Number(kept.at(-1)?.seq) });
    expect(Number(marker?.seq)).toBe(Number(kept.at(-1)?.seq) + 1_000_000);
    // After the marker: the restore's own settling of the turns it cut (error + turn.done, no instance), then the resumed instance's events.
    const interrupted = ((marker?.content as JsonObject | undefined)?.interrupted_turns as number[] | undefined) ?? [];
    const afterMarker = data.messages.filter((m) => Number(m.seq) > Number(marker?.seq));
    const settled = afterMarker.filter((m) => m.instance_id === "");
    expect(settled.map((m) => [m.message_type, m.turn])).toEqual(
      interrupted.flatMap((turn) => [
        ["error", turn],
        ["turn.done", turn],
      ]),
    );
    expect(afterMarker.slice(settled.length).every((m) => m.instance_id === resumed.instance.instance_id)).toBe(true);
    console.log(
      `host death: ${acked.length} turns acknowledged in 4 s; restored on ${survivor.id}: state ${restored.state.length}, messages ${restored.messages.length}, files ${restored.files.length} ` +
        `(${JSON.stringify(marker?.content)}); oldest lost write per database acknowledged ${JSON.stringify(windows)} ms before the kill; resumed ${resumed.ms} ms after the kill ` +
        `(one POST, which the gateway holds while the dead coordinator is declared gone; ${resumed.attempts.length} refused attempts)`,
    );
    // Documented bound (docs/replication.md): sync interval + monitor interval + one upload, about 2 s.
    for (const ms of Object.values(windows)) expect(ms).toBeLessThanOrEqual(3000);
    // The gateway held the create until the dead coordinator was declared gone (without that: ~15 refusals).
    expect(resumed.attempts.length).toBeLessThanOrEqual(1);

    // The resumed agent keeps going where its replica ended, and is replicated by the survivor.
    const ws2 = await cluster.connect(G, String(resumed.instance.instance_id));
    await turn(ws2, String(resumed.instance.instance_id), "after-failover");
    ws2.close();
    const after = await agentData(String(resumed.instance.instance_id));
    expect(after.notes).toEqual([...data.notes, "after-failover"]);
    expect(after.completes.at(-1)).toBe("noted after-failover");
    const replicating = await until(
      async () => {
        const r = await cluster.api(G, "GET", `/api/v1/agents/${agentId}/replication`);
        return r.json.coordinator_id === survivor.id && r.json.state === "replicating" && r.json.lag_ms === 0 ? r.json : undefined;
      },
      "replication on the survivor to catch up",
      30_000,
      100,
    );
    expect(replicating.value.generation).toMatch(/^[0-9a-f]{16}$/);
    expect((await cluster.api(G, "DELETE", `/api/v1/instances/${String(resumed.instance.instance_id)}`)).status).toBe(200);
  }, 90_000);

  it("podium restore --agent ID --timestamp T forks the agent as it was at T", async () => {
    await cluster.addCoordinator();
    const agentId = "durable-pitr";
    const { instance } = await createAgent(agentId);
    const instanceId = String(instance.instance_id);
    const ws = await cluster.connect(G, instanceId);
    await turn(ws, instanceId, "one");
    await inS3(agentId);
    // T is right after the upload (often in the same second: S3 times have 1 s resolution) with no upload
    // after it until "two": the restore must find "one"'s generation although its uploads end before T.
    await sleep(100);
    const between = new Date().toISOString();
    await sleep(1100);
    await turn(ws, instanceId, "two");
    ws.close();
    expect((await cluster.api(G, "DELETE", `/api/v1/instances/${instanceId}`)).status).toBe(200);

    const cli = await run(process.execPath, [PODIUM_BIN, "restore", "--agent", agentId, "--timestamp", between, "--as", "durable-pitr-fork", "--url", G], {
      env: childEnv({ PODIUM_API_KEY: cluster.apiKey }),
    });
    const result = JSON.parse(cli.stdout) as JsonObject;
    expect(result).toMatchObject({ agent_id: "durable-pitr-fork", source_agent_id: agentId, timestamp: between });
    expect(cli.stderr).toMatch(/restored durable-pitr as of .* into durable-pitr-fork \(\d+ ms\)/);
    const fork = await createAgent("durable-pitr-fork");
    expect(fork.instance.coordinator_id).toBe(result.coordinator_id);
    expect((await agentData(String(fork.instance.instance_id))).notes).toEqual(["one"]);
    const source = await createAgent(agentId);
    expect((await agentData(String(source.instance.instance_id))).notes).toEqual(["one", "two"]);
    for (const i of [fork.instance, source.instance]) await cluster.api(G, "DELETE", `/api/v1/instances/${String(i.instance_id)}`);

    const bad = await run(process.execPath, [PODIUM_BIN, "restore", "--agent", agentId, "--timestamp", "last tuesday", "--url", G], { env: childEnv({ PODIUM_API_KEY: cluster.apiKey }) }).catch(
      (err: { code: number; stderr: string }) => err,
    );
    expect(bad).toMatchObject({ code: 1, stderr: expect.stringContaining("--timestamp must be an RFC 3339 time") });
  }, 90_000);

  it("fencing: an owner paused (SIGSTOP) while another coordinator takes its agent over writes nothing after it resumes", async () => {
    const agentId = "durable-fenced";
    const { instance } = await createAgent(agentId);
    const owner = coordinatorOf(instance);
    const instanceId = String(instance.instance_id);
    const ws = await cluster.connect(G, instanceId);
    await turn(ws, instanceId, "before");
    await inS3(agentId); // "before" is in S3
    // A slow turn: the agent answers in 2 s, while its coordinator is frozen.
    const late = await cluster.api(G, "POST", `/api/v1/instances/${instanceId}/messages`, { content: { text: "late", delay_ms: 2000 } });
    expect(late.status).toBe(202);
    await sleep(100);
    owner.signal("SIGSTOP");
    let resumedOwner = false;
    try {
      const takeover = await createAgent(agentId);
      const taker = coordinatorOf(takeover.instance);
      expect(taker.id).not.toBe(owner.id);
      const takerId = String(takeover.instance.instance_id);
      const taken = await agentData(takerId);
      expect(taken.notes[0]).toBe("before");
      // "late" was acknowledged; if it reached S3 before the pause, the new owner runs it (the delivery
      // promise: it never began as far as the replica knows), else it was lost with the unreplicated window.
      const lateReplicated = taken.messages.some((m) => m.direction === "inbound" && (m.content as JsonObject).text === "late");
      const ws2 = await cluster.connect(G, takerId);
      await turn(ws2, takerId, "after-takeover");
      ws2.close();
      const expectedNotes = lateReplicated ? ["before", "late", "after-takeover"] : ["before", "after-takeover"];
      expect((await agentData(takerId)).notes).toEqual(expectedNotes);

      owner.signal("SIGCONT");
      resumedOwner = true;
      // The old owner finds its lease gone: it stops its instance and writes nothing (its agent said "late" meanwhile).
      await until(async () => (/lost an agent's lease/.test(owner.output()) ? true : undefined), "the old owner to notice it lost the lease", 10_000, 100);
      await sleep(1500);
      const local = new Database(path.join(owner.dataDir, "agents", agentId, "messages.db"), { readonly: true, fileMustExist: true });
      try {
        // The "late" message itself was recorded before the pause; nothing after it (the agent's reply, turn end, `terminated`).
        const inbound = local.prepare("SELECT seq FROM messages WHERE direction = 'inbound' AND content LIKE '%\"late\"%'").get() as { seq: number } | undefined;
        expect(inbound?.seq).toBeGreaterThan(0);
        const after = local.prepare("SELECT message_type, content FROM messages WHERE seq > ?").all(inbound?.seq ?? 0);
        expect(after).toEqual([]);
      } finally {
        local.close();
      }
      expect((await cluster.api(G, "DELETE", `/api/v1/instances/${takerId}`)).status).toBe(200);

      // S3 holds the new owner's history only.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-fenced-"));
      try {
        const restored = await restoreAgent({
          agentId,
          targetDir: path.join(dir, agentId),
          s3: { bucket: cluster.s3.bucket, prefix: "replicas/", endpoint: cluster.s3.endpoint, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } },
          materializeWorkspace: false,
        });
        expect(restored.restored).toBe(true);
        const store = AgentStore.open({ dir: path.join(dir, agentId) });
        try {
          expect(store.state.current().state).toEqual({ notes: expectedNotes });
        } finally {
          store.close();
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      if (!resumedOwner) owner.signal("SIGCONT");
    }
  }, 90_000);

  it("a drained coordinator (SIGTERM) hands its agents over cleanly: they resume elsewhere with everything, no reconciliation", async () => {
    const agentId = "durable-drained";
    const { instance } = await createAgent(agentId);
    const owner = coordinatorOf(instance);
    const instanceId = String(instance.instance_id);
    const ws = await cluster.connect(G, instanceId);
    for (const text of ["a", "b", "c"]) await turn(ws, instanceId, text);
    ws.close();
    expect(await owner.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    const stopped = await until(async () => {
      const r = await cluster.api(G, "GET", `/api/v1/agents/${agentId}/replication`);
      return r.status === 200 && r.json.state === "stopped" ? r.json : undefined;
    }, "the stopped agent's replication status (from S3)");
    // Read from S3 by a coordinator that never ran it: the final positions of the clean release.
    expect(stopped.value).toMatchObject({ lag_ms: 0, generation: expect.stringMatching(/^[0-9a-f]{16}$/), position: expect.stringMatching(/^[0-9a-f]{16}\//) });
    expect(stopped.value.coordinator_id).not.toBe(owner.id);
    const resumed = await createAgent(agentId);
    expect(resumed.instance.coordinator_id).not.toBe(owner.id);
    const data = await agentData(String(resumed.instance.instance_id));
    expect(data.notes).toEqual(["a", "b", "c"]);
    expect(data.completes).toEqual(["noted a", "noted b", "noted c"]);
    expect(data.files.sort()).toEqual(["notes/1.txt", "notes/2.txt", "notes/3.txt"]);
    expect(data.messages.some((m) => m.message_type === "agent.restored")).toBe(false);
    await cluster.api(G, "DELETE", `/api/v1/instances/${String(resumed.instance.instance_id)}`);
  }, 90_000);

  it("a schedule survives its host's death: the agent resumed elsewhere from S3 fires it once, with its original due_at", async () => {
    await cluster.addCoordinator();
    const deployed = await cluster.api(G, "POST", "/api/v1/deployments", await packBundle(path.join(REPO_ROOT, "test/fixtures/bundles/timer-ts")));
    expect(deployed.status).toBe(201);
    const agentId = "durable-timer";
    const create = async () =>
      (
        await until(
          async () => {
            const res = await cluster.api(G, "POST", "/api/v1/instances", { deployment_id: "timer-ts:1.0.0", agent_id: agentId });
            if (res.status === 201) return res.json;
            if (res.status !== 503 && res.status !== 409) throw new Error(`create ${agentId}: ${res.status} ${JSON.stringify(res.json)}`);
            return undefined;
          },
          `an instance of ${agentId}`,
          40_000,
          200,
        )
      ).value;
    const first = await create();
    const owner = coordinatorOf(first);
    const id = String(first.instance_id);
    const ws = await cluster.connect(G, id);
    const sent = await cluster.api(G, "POST", `/api/v1/instances/${id}/messages`, { content: { text: "after", ms: 5000 } });
    await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === sent.json.turn, 15_000);
    ws.close();
    const schedule = ((await cluster.api(G, "GET", `/api/v1/instances/${id}/schedules`)).json.schedules as JsonObject[]).find((s) => s.source === "agent");
    // Hibernated (600 ms idle): its final sync put the schedule in S3.
    await until(
      async () => {
        const r = await cluster.api(G, "GET", `/api/v1/agents/${agentId}/replication`);
        return r.json.state === "stopped" && r.json.lag_ms === 0 ? true : undefined;
      },
      "the hibernated agent's final sync",
      20_000,
      100,
    );
    await Promise.all([owner.kill(), run("pkill", ["-KILL", "-f", `${owner.dataDir}/replication/`]).catch(() => undefined)]);

    const resumed = await create();
    expect(resumed.coordinator_id).not.toBe(owner.id);
    const rid = String(resumed.instance_id);
    const { value: fired } = await until(
      async () => {
        const state = await cluster.api(G, "GET", `/api/v1/instances/${rid}/state`);
        const list = ((state.json.state as JsonObject | undefined)?.fired as JsonObject[] | undefined) ?? [];
        return list.length > 0 ? list : undefined;
      },
      "the schedule to fire on the survivor",
      30_000,
      200,
    );
    expect(fired).toEqual([{ text: "delayed", id: schedule?.id, due_at: schedule?.due_at }]);
    await cluster.api(G, "DELETE", `/api/v1/instances/${rid}`);
  }, 90_000);
});
