/**
 * The delivery promise across a host crash, with `podium dev` as its own OS process: kill -9 while
 * acknowledged messages are queued, start it again on the same data directory, resume the agent. Every
 * acknowledged message ends with `turn.done`: it runs after the resume, or (the turn that was running when
 * the coordinator died) gets an `error` saying it was interrupted. Also: the change-tracking directories
 * the killed process left in the temp dir are removed when the next one starts.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import type { JsonObject } from "../../services/shared/json.js";
import { until } from "../helpers/cluster-processes.js";
import { startDevProcess, type DevProcess } from "../helpers/dev-process.js";
import { readMessages, turnOutcomes } from "../helpers/delivery-check.js";
import { agentProcesses } from "../helpers/agent-processes.js";
import { removeDataDir } from "../helpers/dev-fixture.js";

let root: string;
let dataDir: string;
let agentsDir: string;
let tmpDir: string;
const started: DevProcess[] = [];

beforeAll(() => {
  // Agents run as unprivileged users when the tests run as root: every parent of the data dir must be searchable.
  root = fs.mkdtempSync(path.join(os.tmpdir(), "podium-delivery-"));
  fs.chmodSync(root, 0o711);
  dataDir = path.join(root, "data");
  agentsDir = path.join(root, "agents");
  tmpDir = path.join(root, "tmp"); // the dev processes' TMPDIR: only their watch directories are in it
  for (const dir of [dataDir, agentsDir, tmpDir]) fs.mkdirSync(dir, { mode: 0o711 });
  fs.cpSync(path.join(REPO_ROOT, "test/fixtures/bundles/durable-ts"), path.join(agentsDir, "durable-ts"), { recursive: true });
});

afterAll(async () => {
  for (const dev of started) await dev.stop(10_000); // a clean stop unmounts the agents' disks
  removeDataDir(root);
}, 60_000);

async function start(): Promise<DevProcess> {
  const dev = await startDevProcess({ dataDir, agentsDir, env: { TMPDIR: tmpDir } });
  started.push(dev);
  return dev;
}

const watchDirsOf = (pid: number): string[] => fs.readdirSync(tmpDir).filter((name) => name.startsWith(`podium-chronicle-watch-${pid}-`));

describe("kill -9 of podium dev with acknowledged messages queued", () => {
  it("every acknowledged message runs after the resume, or gets an error naming why; the killed process's watch dirs are removed", async () => {
    const agentId = "delivery-dev";
    const first = await start();
    const created = await first.api("POST", "/api/v1/instances", { deployment_id: "durable-ts:1.0.0@local", agent_id: agentId });
    expect(created.status).toBe(201);
    const instanceId = String(created.json.instance_id);
    // 20 messages acknowledged in order; each turn takes 250 ms, so most are still queued at the kill.
    const acked: { turn: number; text: string }[] = [];
    for (let i = 1; i <= 20; i++) {
      const sent = await first.api("POST", `/api/v1/instances/${instanceId}/messages`, { content: { text: `m${i}`, delay_ms: 250 } });
      expect(sent.status).toBe(202);
      acked.push({ turn: Number(sent.json.turn), text: `m${i}` });
    }
    const turns = acked.map((a) => a.turn);
    await until(async () => (turnOutcomes(await readMessages(first.api, instanceId), turns).length >= 2 ? true : undefined), "two turns to end", 30_000, 50);
    expect(watchDirsOf(first.pid).length).toBeGreaterThan(0); // the live instance's change tracking

    await first.kill();
    const before = turnOutcomes(await readMessagesOffline(), turns);
    expect(before.length).toBeLessThan(turns.length); // messages were still queued when it died

    const second = await start();
    expect(watchDirsOf(first.pid)).toEqual([]); // removed at start: their process is gone
    // No agent of the killed process survived it.
    expect(agentProcesses([dataDir]).filter((p) => p.instanceId === instanceId)).toEqual([]);
    // The restarted coordinator has the instance back, hibernated; resuming the agent wakes that instance.
    expect((await second.api("GET", `/api/v1/instances/${instanceId}`)).json.status).toBe("hibernated");
    const resumed = await second.api("POST", "/api/v1/instances", { deployment_id: "durable-ts:1.0.0@local", agent_id: agentId });
    expect(resumed.status).toBe(201);
    const resumedId = String(resumed.json.instance_id);
    expect(resumedId).toBe(instanceId);
    const endedBefore = new Set(before.map((o) => o.turn));
    const { value: outcomes } = await until(
      async () => {
        const found = turnOutcomes(await readMessages(second.api, resumedId), turns);
        return found.length === turns.length ? found : undefined;
      },
      "every acknowledged message to end",
      60_000,
      100,
    );

    // Exactly one end per message, in the order the messages were sent.
    expect(outcomes.map((o) => o.turn)).toEqual(turns);
    const failed = outcomes.filter((o) => !o.ok);
    // At most the turn that was running when the process died is not run again, and it says why.
    expect(failed.length).toBeLessThanOrEqual(1);
    for (const o of failed) expect(o.error).toMatch(/^interrupted: /);
    const ranAfter = outcomes.filter((o) => o.ok && !endedBefore.has(o.turn));
    expect(ranAfter.length).toBeGreaterThan(0);
    expect(ranAfter.length + before.length + failed.filter((o) => !endedBefore.has(o.turn)).length).toBe(turns.length);
    console.log(`kill -9 of podium dev: ${turns.length} acknowledged, ${before.length} ended before the kill, ${failed.length} interrupted, ${ranAfter.length} ran after the restart`);
    // The agent saw each message that ran once, in order (its state lists them).
    const state = await second.api("GET", `/api/v1/instances/${resumedId}/state`);
    const ok = new Set(outcomes.filter((o) => o.ok).map((o) => o.turn));
    expect((state.json.state as JsonObject).notes).toEqual(acked.filter((a) => ok.has(a.turn)).map((a) => a.text));
    expect((await second.api("DELETE", `/api/v1/instances/${resumedId}`)).status).toBe(200);
  }, 120_000);
});

/** The messages the killed process left (read from messages.db directly; no server runs now). */
async function readMessagesOffline(): Promise<JsonObject[]> {
  const { AgentStore } = await import("../../services/coordinator/store/agent-store.js");
  const store = AgentStore.open({ dir: path.join(dataDir, "agents", "delivery-dev") });
  try {
    return store.messages.list(0, 100_000).map((m) => ({ seq: m.seq, direction: m.direction, turn: m.turn, message_type: m.messageType, content: m.content ?? null, instance_id: m.instanceId }));
  } finally {
    store.close();
  }
}
