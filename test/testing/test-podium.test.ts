/** @podium-agents/testing: what an agent author writes to unit test an agent. */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import path from "node:path";
import { createTestPodium, type TestPodium } from "../../packages/testing/src/index.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

let podium: TestPodium;
beforeAll(async () => {
  podium = await createTestPodium();
});
afterAll(async () => {
  await podium.close();
});

describe("@podium-agents/testing", () => {
  it.each(["echo-ts", "echo-py"])("runs %s turn by turn and exposes its state", async (name) => {
    const agent = await podium.start(path.join(REPO_ROOT, "examples", name));
    const turn = await agent.send({ text: "hello testing" });
    expect(turn.text).toBe("hello testing");
    expect(turn.events[0]?.messageType).toBe("stream_start");
    expect(turn.error).toBeUndefined();
    expect(await agent.state()).toEqual({ turns: 1 });
    await agent.stop();
  });

  it("reports a failing turn", async () => {
    const agent = await podium.start(path.join(REPO_ROOT, "test/fixtures/bundles/faulty-py"));
    const turn = await agent.send({ text: "boom" });
    expect(turn.error).toContain("kaboom");
    expect((await agent.send({ text: "again" })).text).toBe("ok:again");
    await agent.stop();
  });
});
