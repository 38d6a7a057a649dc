/**
 * The coordinator core when things go wrong, through the real handlers on `createRouterTransport` with
 * fake agent processes (core-harness.ts): a crash mid-turn, starts that fail (fatal, exit, protocol,
 * timeout), the platform's limits (turn time, message size, queue, capacity) and a drain.
 */
import { describe, expect, it } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { InstanceStatus } from "../../gen/podium/v1/instance_pb.js";
import type { StreamUpdate } from "../../gen/podium/v1/stream_update_pb.js";
import { connectErrorOf } from "../helpers/connect-error-of.js";
import { DEPLOYMENT_ID, harnessesPerTest } from "./core-harness.js";

const harness = harnessesPerTest();

const terminated = (u: StreamUpdate) => u.messageType === "terminated";
const ofTurn = (updates: StreamUpdate[], turn: bigint) => updates.filter((u) => u.turn === turn).map((u) => u.messageType);

describe("coordinator core failures with a fake agent process", () => {
  it("a crash mid-turn fails the turn and the queue, records terminated, and the instance is failed", async () => {
    const h = harness();
    const instanceId = await h.create();
    const crashing = await h.instances.sendMessage({ instanceId, content: { fake: "crash" } });
    const queued = await h.instances.sendMessage({ instanceId, content: { text: "never runs" } });
    const updates = await h.updatesUntil(instanceId, terminated);
    expect(ofTurn(updates, crashing.turn)).toEqual(["started", "error", "turn.done"]);
    expect(updates.find((u) => u.turn === crashing.turn && u.messageType === "error")?.content).toEqual({ message: `agent process exited during turn ${crashing.turn}` });
    expect(updates.find((u) => u.turn === queued.turn && u.messageType === "error")?.content).toMatchObject({ message: "instance ended before this message was processed" });
    expect(updates[updates.length - 1]?.content).toEqual({ reason: "crashed", exit_code: 3, signal: null });
    const { instance } = await h.instances.getInstance({ instanceId });
    expect(instance?.status).toBe(InstanceStatus.FAILED);
    expect(instance?.exit).toMatchObject({ code: 3, reason: "crashed" });
    expect((await connectErrorOf(h.instances.sendMessage({ instanceId, content: {} }))).code).toBe(Code.NotFound);
    // The agent is free again: its next instance starts from the same databases.
    const agentId = instance?.agentId ?? "";
    await h.manager.require(instanceId).ended;
    const next = await h.create(agentId);
    expect(h.fakes.last().init).toMatchObject({ agentId, stateVersion: 1 });
    expect(next).not.toBe(instanceId);
  });

  it("a create fails with the agent's reason when it cannot start, and leaves nothing live", async () => {
    const cases = [
      { fake: { start: "fatal" as const }, code: Code.FailedPrecondition, message: /^agent failed to start: fake agent cannot load its module/ },
      { fake: { start: "exit" as const }, code: Code.FailedPrecondition, message: /^agent process exited before it was ready \(exit code 1, signal null\): fake agent: cannot start/ },
      { fake: { protocol: 99 }, code: Code.FailedPrecondition, message: /^agent speaks protocol 99/ },
      { fake: { start: "hang" as const }, code: Code.DeadlineExceeded, message: /^agent did not become ready within 40 ms \(fake process made after \d+ ms, init sent after/ },
    ];
    for (const { fake, code, message } of cases) {
      const h = harness({ fake, limits: { startTimeoutMs: 40 } });
      const err = await connectErrorOf(h.create("agent-unlucky"));
      expect({ code: err.code, message: err.rawMessage }).toEqual({ code, message: expect.stringMatching(message) });
      expect(h.fakes.last().alive).toBe(false);
      expect((await h.instances.listInstances({})).instances).toHaveLength(0);
      expect((await h.coordinator.getCoordinatorInfo({})).info?.instances).toBe(0);
    }
  });

  it("a create whose caller goes away while the agent starts leaves no agent running", async () => {
    const h = harness({ fake: { start: "hang" } });
    const abort = new AbortController();
    const creating = h.instances.createInstance({ deploymentId: DEPLOYMENT_ID, agentId: "agent-abandoned" }, { signal: abort.signal });
    while (h.fakes.processes.length === 0 || !h.fakes.last().init) await new Promise((resolve) => setImmediate(resolve));
    abort.abort();
    expect((await connectErrorOf(creating)).code).toBe(Code.Canceled);
    await h.fakes.last().exited;
    expect(h.fakes.last().alive).toBe(false);
    expect((await h.instances.listInstances({ agentId: "agent-abandoned" })).instances).toHaveLength(0);
  });

  it("a turn past max_turn_ms is cancelled; an agent that ignores the cancel is killed after the grace", async () => {
    const h = harness({ manifest: { limits: { max_turn_ms: 30 } }, limits: { turnKillGraceMs: 30 } });
    const instanceId = await h.create();
    const held = await h.instances.sendMessage({ instanceId, content: { fake: "hold" } });
    let updates = await h.updatesUntil(instanceId, (u) => u.messageType === "turn.done" && u.turn === held.turn);
    expect(ofTurn(updates, held.turn)).toEqual(["started", "complete", "turn.done"]);
    expect(h.fakes.last().received).toContainEqual({ type: "cancel", turn: Number(held.turn) });
    const stuck = await h.instances.sendMessage({ instanceId, content: { fake: "ignore-cancel" } });
    updates = await h.updatesUntil(instanceId, terminated);
    expect(updates.find((u) => u.turn === stuck.turn && u.messageType === "error")?.content).toEqual({ message: "turn exceeded the maximum duration of 30 ms" });
    expect(updates[updates.length - 1]?.content).toEqual({ reason: "turn exceeded the maximum duration of 30 ms", exit_code: null, signal: "SIGKILL" });
    expect((await h.instances.getInstance({ instanceId })).instance?.status).toBe(InstanceStatus.FAILED);
  });

  it("refuses a message over max_message_bytes and one past the queue limit, recording neither", async () => {
    const h = harness({ limits: { maxMessageBytes: 64, maxQueuedMessages: 1 } });
    const instanceId = await h.create();
    const big = await connectErrorOf(h.instances.sendMessage({ instanceId, content: { text: "x".repeat(100) } }));
    expect(big.code).toBe(Code.InvalidArgument);
    await h.instances.sendMessage({ instanceId, content: { fake: "hold" } });
    await h.instances.sendMessage({ instanceId, content: { text: "queued" } });
    const lastSeq = (await h.instances.getInstance({ instanceId })).instance?.lastSeq;
    const full = await connectErrorOf(h.instances.sendMessage({ instanceId, content: { text: "one too many" } }));
    expect(full.code).toBe(Code.ResourceExhausted);
    expect((await h.instances.getInstance({ instanceId })).instance?.lastSeq).toBe(lastSeq);
  });

  it("a flood of events in one turn is recorded in order, gap-free", async () => {
    const h = harness();
    const instanceId = await h.create();
    const flood = await h.instances.sendMessage({ instanceId, content: { fake: "flood", count: 500 } });
    const updates = await h.updatesUntil(instanceId, (u) => u.messageType === "turn.done" && u.turn === flood.turn);
    const chunks = updates.filter((u) => u.messageType === "chunk").map((u) => u.content?.i);
    expect(chunks).toEqual([...Array(500).keys()]);
    const seqs = updates.map((u) => Number(u.seq));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });

  it("refuses creates past capacity, and every create once draining", async () => {
    const h = harness({ capacity: 1 });
    const first = await h.create();
    expect((await connectErrorOf(h.create())).code).toBe(Code.ResourceExhausted);
    const { stopped } = await h.coordinator.drainCoordinator({ deadlineMs: 1_000 });
    expect(stopped).toBe(1);
    expect((await h.instances.getInstance({ instanceId: first })).instance?.status).toBe(InstanceStatus.TERMINATED);
    const draining = await connectErrorOf(h.instances.createInstance({ deploymentId: DEPLOYMENT_ID }));
    expect(draining.code).toBe(Code.Unavailable);
    expect((await h.coordinator.getCoordinatorInfo({})).info?.draining).toBe(true);
  });
});
