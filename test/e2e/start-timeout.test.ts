/**
 * A start that never becomes ready, end to end in `podium dev`: the create answers 504 with an error
 * that names how far the start got (and the agent's CPU time where cgroups count it), and leaves no
 * agent process behind.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { agentProcesses } from "../helpers/agent-processes.js";
import type { JsonObject } from "../../services/shared/json.js";

let podium: DevFixture;

beforeAll(async () => {
  // slow-start-ts takes 6 s to load its module; 2 s is less.
  podium = await startDevFixture({ coordinator: { limits: { startTimeoutMs: 2000 } } });
}, 60_000);

afterAll(async () => {
  await podium?.close();
});

describe("start timeout", () => {
  it("answers 504 naming the steps the start reached, and leaves no process", async () => {
    const res = await fetch(`${podium.url}/api/v1/instances`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ deployment_id: "slow-start-ts:1.0.0@local", agent_id: "never-ready" }),
    });
    const body = (await res.json()) as JsonObject;
    expect(res.status).toBe(504);
    const error = body.error as JsonObject;
    expect(error.code).toBe("deadline_exceeded");
    // The CPU time is there where the coordinator could create the agent's cgroup.
    expect(String(error.message)).toMatch(/^agent did not become ready within 2000 ms \(.*init sent after \d+ ms(; the agent used \d+ ms of CPU)?\)$/);
    expect(String(error.message)).not.toContain(podium.dataDir);
    expect(agentProcesses([podium.dataDir]).filter((p) => p.agentId === "never-ready")).toEqual([]);
  }, 60_000);
});
