/**
 * The coordinator core's lifecycle through the real CoordinatorService / InstanceService handlers on
 * `createRouterTransport`, with fake agent processes and real SQLite stores (core-harness.ts): create ->
 * ready, turns queued and run in order, cancel, on_busy interrupt and reject, answers, stop with grace and
 * with a hard kill, hibernation and wake. No socket, runner or sandbox: each test takes milliseconds.
 */
import { describe, expect, it } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { InstanceStatus } from "../../gen/podium/v1/instance_pb.js";
import { MultitaskStrategy } from "../../gen/podium/v1/instance_service_pb.js";
import type { StreamUpdate } from "../../gen/podium/v1/stream_update_pb.js";
import { connectErrorOf } from "../helpers/connect-error-of.js";
import { DEPLOYMENT_ID, harnessesPerTest } from "./core-harness.js";

const harness = harnessesPerTest();

const turnDone = (turn: bigint) => (u: StreamUpdate) => u.messageType === "turn.done" && u.turn === turn;
const ofTurn = (updates: StreamUpdate[], turn: bigint) => updates.filter((u) => u.turn === turn).map((u) => u.messageType);

describe("coordinator core with a fake agent process", () => {
  it("creates an instance that is ready, with its initial state and the init it was given", async () => {
    const h = harness();
    const instanceId = await h.create("agent-one");
    const { instance } = await h.instances.getInstance({ instanceId });
    expect(instance?.status).toBe(InstanceStatus.READY);
    expect(instance?.agentId).toBe("agent-one");
    expect(instance?.deploymentId).toBe(DEPLOYMENT_ID);
    expect(instance?.pid).toBe(h.fakes.last().pid);
    expect(h.fakes.last().init).toMatchObject({ type: "init", instanceId, agentId: "agent-one", deploymentId: DEPLOYMENT_ID, stateVersion: 0 });
    expect((await h.instances.getState({ instanceId })).state).toEqual({ count: 0 });
    const { info } = await h.coordinator.getCoordinatorInfo({});
    expect(info?.instances).toBe(1);
  });

  it("queues messages behind the running turn and runs them in order, with gap-free seqs", async () => {
    const h = harness();
    const instanceId = await h.create();
    const first = await h.instances.sendMessage({ instanceId, content: { fake: "hold" } });
    const second = await h.instances.sendMessage({ instanceId, content: { text: "two" } });
    const third = await h.instances.sendMessage({ instanceId, content: { text: "three" } });
    expect([first.queuePosition, second.queuePosition, third.queuePosition]).toEqual([0, 1, 2]);
    expect((await h.instances.getInstance({ instanceId })).instance?.queuedMessages).toBe(2);
    await h.updatesUntil(instanceId, (u) => u.messageType === "started");
    h.fakes.last().release(Number(first.turn));
    const updates = await h.updatesUntil(instanceId, turnDone(third.turn));
    expect(ofTurn(updates, second.turn)).toEqual(["echo", "state.delta", "complete", "turn.done"]);
    expect(updates.find((u) => u.turn === third.turn && u.messageType === "echo")?.content).toEqual({ text: "three" });
    const { messages } = await h.instances.listMessages({ instanceId, limit: 1000 });
    expect(messages.map((m) => m.seq)).toEqual(messages.map((_, i) => BigInt(i + 1)));
    // Each turn ran after the one before it had ended.
    const turnsDone = messages.filter((m) => m.messageType === "turn.done").map((m) => m.turn);
    expect(turnsDone).toEqual([first.turn, second.turn, third.turn]);
    const sent = h.fakes
      .last()
      .received.filter((f) => f.type === "message")
      .map((f) => (f.type === "message" ? f.turn : 0));
    expect(sent.map(BigInt)).toEqual([first.turn, second.turn, third.turn]);
    expect((await h.instances.getState({ instanceId })).state).toEqual({ count: 2 });
  });

  it("cancels the running turn; a queued turn is not the running one and still runs", async () => {
    const h = harness();
    const instanceId = await h.create();
    const held = await h.instances.sendMessage({ instanceId, content: { fake: "hold" } });
    const queued = await h.instances.sendMessage({ instanceId, content: { text: "after" } });
    expect(await h.instances.cancelTurn({ instanceId, turn: queued.turn })).toMatchObject({ cancelled: false });
    expect(await h.instances.cancelTurn({ instanceId })).toMatchObject({ cancelled: true, turn: held.turn });
    const updates = await h.updatesUntil(instanceId, turnDone(queued.turn));
    expect(ofTurn(updates, held.turn)).toEqual(["started", "complete", "turn.done"]);
    expect(ofTurn(updates, queued.turn)).toContain("echo");
    expect(h.fakes.last().received).toContainEqual({ type: "cancel", turn: Number(held.turn) });
    expect(await h.instances.cancelTurn({ instanceId })).toMatchObject({ cancelled: false });
  });

  it("on_busy interrupt cancels the running turn and supersedes the queued ones", async () => {
    const h = harness();
    const instanceId = await h.create();
    const held = await h.instances.sendMessage({ instanceId, content: { fake: "hold" } });
    const queued = await h.instances.sendMessage({ instanceId, content: { text: "queued" } });
    const urgent = await h.instances.sendMessage({ instanceId, content: { text: "urgent" }, multitaskStrategy: MultitaskStrategy.INTERRUPT });
    expect(urgent.cancelledTurns).toEqual([held.turn, queued.turn]);
    const updates = await h.updatesUntil(instanceId, turnDone(urgent.turn));
    expect(updates.find((u) => u.turn === held.turn && u.messageType === "turn.done")?.content).toEqual({ turn: Number(held.turn), ok: false, cancelled: true });
    expect(updates.find((u) => u.turn === queued.turn && u.messageType === "error")?.content).toMatchObject({ code: "cancelled" });
    expect(ofTurn(updates, queued.turn)).not.toContain("echo");
    expect(updates.find((u) => u.turn === urgent.turn && u.messageType === "echo")?.content).toEqual({ text: "urgent" });
  });

  it("on_busy reject refuses a message while busy and records nothing", async () => {
    const h = harness({ manifest: { on_busy: "reject" } });
    const instanceId = await h.create();
    const held = await h.instances.sendMessage({ instanceId, content: { fake: "hold" } });
    const before = (await h.instances.getInstance({ instanceId })).instance?.lastSeq;
    const err = await connectErrorOf(h.instances.sendMessage({ instanceId, content: { text: "too soon" } }));
    expect(err.code).toBe(Code.Aborted);
    expect((await h.instances.getInstance({ instanceId })).instance?.lastSeq).toBe(before);
    await h.updatesUntil(instanceId, (u) => u.messageType === "started");
    h.fakes.last().release(Number(held.turn));
    await h.updatesUntil(instanceId, turnDone(held.turn));
    const after = await h.instances.sendMessage({ instanceId, content: { text: "now" } });
    await h.updatesUntil(instanceId, turnDone(after.turn));
  });

  it("relays an answer to the agent's open request once", async () => {
    const h = harness();
    const instanceId = await h.create();
    const asked = await h.instances.sendMessage({ instanceId, content: { fake: "ask" } });
    await h.updatesUntil(instanceId, (u) => u.messageType === "ask");
    const requestId = `ask-${asked.turn}`;
    await h.instances.answerRequest({ instanceId, requestId, value: { kind: { case: "boolValue", value: true } } });
    const updates = await h.updatesUntil(instanceId, turnDone(asked.turn));
    expect(ofTurn(updates, asked.turn)).toEqual(["ask", "tool.approval_resolved", "answered", "complete", "turn.done"]);
    expect((await connectErrorOf(h.instances.answerRequest({ instanceId, requestId }))).code).toBe(Code.NotFound);
  });

  it("stops within the grace: onStop runs, terminating then terminated, exit code 0", async () => {
    const h = harness();
    const instanceId = await h.create();
    const { instance } = await h.instances.stopInstance({ instanceId, graceMs: 5_000 });
    expect(instance?.status).toBe(InstanceStatus.TERMINATED);
    expect(instance?.exit).toMatchObject({ code: 0, signal: "", reason: "stopped" });
    const updates = await h.updatesUntil(instanceId, (u) => u.messageType === "terminated");
    expect(updates.map((u) => u.messageType).slice(-2)).toEqual(["terminating", "terminated"]);
    expect(updates[updates.length - 2]?.content).toEqual({ grace_ms: 5_000 });
    expect(h.fakes.last().received.map((f) => f.type)).toEqual(["init", "stop"]);
    expect((await connectErrorOf(h.instances.sendMessage({ instanceId, content: {} }))).code).toBe(Code.NotFound);
  });

  it("kills an agent that ignores stop once the grace has passed; its running turn fails", async () => {
    const h = harness({ fake: { stop: "ignore" } });
    const instanceId = await h.create();
    const held = await h.instances.sendMessage({ instanceId, content: { fake: "hold" } });
    await h.updatesUntil(instanceId, (u) => u.messageType === "started");
    const started = Date.now();
    const { instance } = await h.instances.stopInstance({ instanceId, graceMs: 30 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(instance?.status).toBe(InstanceStatus.TERMINATED);
    expect(instance?.exit).toMatchObject({ signal: "SIGKILL", reason: "stopped" });
    const updates = await h.updatesUntil(instanceId, (u) => u.messageType === "terminated");
    expect(ofTurn(updates, held.turn)).toEqual(["started", "terminating", "error", "turn.done"]);
    expect(updates[updates.length - 1]?.content).toMatchObject({ reason: "stopped", exit_code: null, signal: "SIGKILL" });
  });

  it("hibernates an instance idle for hibernate_after_ms and wakes it with its state for the next message", async () => {
    const h = harness({ manifest: { limits: { hibernate_after_ms: 30 } } });
    const instanceId = await h.create();
    // (Idle right after its start too: on a slow host it may hibernate before this message, which wakes it.)
    const one = await h.instances.sendMessage({ instanceId, content: { text: "one" } });
    const done = (await h.updatesUntil(instanceId, turnDone(one.turn))).pop()?.seq ?? 0n;
    await h.updatesUntil(instanceId, (u) => u.messageType === "hibernated" && u.seq > done);
    await h.manager.require(instanceId).processGone;
    expect((await h.instances.getInstance({ instanceId })).instance?.status).toBe(InstanceStatus.HIBERNATED);
    const asleep = h.fakes.last();
    expect(asleep.alive).toBe(false);
    expect(asleep.received[asleep.received.length - 1]).toMatchObject({ type: "stop", hibernate: true });
    const two = await h.instances.sendMessage({ instanceId, content: { text: "two" } });
    await h.updatesUntil(instanceId, turnDone(two.turn));
    expect(h.fakes.last()).not.toBe(asleep);
    expect(h.fakes.last().init).toMatchObject({ state: { count: 1 } });
    expect((await h.instances.getState({ instanceId })).state).toEqual({ count: 2 });
    const types = (await h.updatesUntil(instanceId, turnDone(two.turn))).map((u) => u.messageType);
    expect(types.indexOf("hibernated")).toBeLessThan(types.indexOf("woke"));
  });
});
