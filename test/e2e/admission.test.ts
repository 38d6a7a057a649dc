/**
 * Admission of starts, end to end in `podium dev`: with one start slot and one waiting place, a burst of
 * creates of an agent that is slow to start gets one start now, one later, and 429 with Retry-After for
 * the rest, at once; the refused creates start nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { agentProcesses } from "../helpers/agent-processes.js";
import type { JsonObject } from "../../services/shared/json.js";

let podium: DevFixture;

beforeAll(async () => {
  podium = await startDevFixture({ coordinator: { starts: { concurrency: 1, maxWaiting: 1, maxWaitMs: 60_000 } } });
}, 60_000);

afterAll(async () => {
  await podium?.close();
});

async function create(agentId: string): Promise<{ status: number; retryAfter: string | null; body: JsonObject; at: number }> {
  const res = await fetch(`${podium.url}/api/v1/instances`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ deployment_id: "slow-start-ts:1.0.0@local", agent_id: agentId }),
  });
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: text ? (JSON.parse(text) as JsonObject) : {}, at: Date.now() };
}

describe("admission of instance starts", () => {
  it("one start at a time, one waiting, the rest refused at once with 429 + Retry-After, starting nothing", async () => {
    const ids = ["adm-1", "adm-2", "adm-3", "adm-4"];
    const answers = await Promise.all(ids.map((id, i) => new Promise((resolve) => setTimeout(resolve, i * 100)).then(() => create(id))));
    const created = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status === 429);
    expect(answers.map((a) => a.status).sort()).toEqual([201, 201, 429, 429]);
    const [first, second] = [...created].sort((a, b) => a.at - b.at) as [(typeof created)[number], (typeof created)[number]];
    for (const r of refused) {
      expect(r.retryAfter).toBe("1");
      expect((r.body.error as JsonObject).code).toBe("resource_exhausted");
      expect(r.at).toBeLessThan(first.at); // at once, not after waiting for a start slot
    }
    // The two that were let in started one after the other: the second only once the first was ready.
    expect(Date.parse(String(second.body.created_at))).toBeGreaterThanOrEqual(Date.parse(String(first.body.ready_at)));
    const refusedIds = ids.filter((_, i) => answers[i]?.status === 429);
    expect(agentProcesses([podium.dataDir]).filter((p) => refusedIds.includes(p.agentId))).toEqual([]);
    for (const c of created) expect((await podium.api("DELETE", `/api/v1/instances/${String(c.body.instance_id)}?grace_ms=0`)).status).toBe(200);
  }, 60_000);
});
