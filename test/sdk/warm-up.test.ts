/**
 * A warm runner's rehearsal (sdk/typescript/src/warm-up.ts) never keeps the runner from reading its
 * `init`: it ends when the stand-in's turn ended, when it failed, or at its limit, and it writes nothing
 * (no frame, no stderr) whatever happens.
 */
import { afterEach, describe, expect, it, jest } from "@jest/globals";
import type { Agent } from "../../sdk/typescript/src/agent-types.js";
import { rehearse } from "../../sdk/typescript/src/warm-up.js";

/** What the runtime writes to stderr (the test runner's own warnings aside). */
function runnerStderr(): { lines(): string[] } {
  const spy = jest.spyOn(process.stderr, "write");
  return { lines: () => spy.mock.calls.map((call) => String(call[0])).filter((text) => text.includes("podium runner")) };
}

afterEach(() => {
  jest.restoreAllMocks();
});

describe("a warm runner's rehearsal", () => {
  it("ends once the stand-in's turn ended, writing nothing", async () => {
    const stderr = runnerStderr();
    await rehearse(undefined, 60_000);
    expect(stderr.lines()).toEqual([]);
  });

  it("ends when the agent's start fails, without a word on stderr", async () => {
    const stderr = runnerStderr();
    const failing = {
      onStart() {
        throw new Error("start failed");
      },
      onMessage() {},
    } as unknown as Agent;
    await rehearse(failing, 60_000);
    expect(stderr.lines()).toEqual([]);
  });

  it("ends at its limit when the turn never ends", async () => {
    const stderr = runnerStderr();
    const stuck = { onMessage: () => new Promise<void>(() => undefined) } as unknown as Agent;
    await rehearse(stuck, 50);
    expect(stderr.lines()).toEqual([]);
  });
});
