/** FrameDelivery: a turn's events (and its turn_done) go first, the rest of their read a loop turn later, order always kept. */
import { describe, expect, it } from "@jest/globals";
import { FrameDelivery } from "../../services/coordinator/frame-delivery.js";
import type { AgentToHost } from "../../services/coordinator/agent-protocol.js";

const event = (i: number): AgentToHost => ({ type: "event", turn: 1, messageType: "e", content: { i } });
const done: AgentToHost = { type: "turn_done", turn: 1 };
const log: AgentToHost = { type: "log", level: "info", message: "x" };
const nextTick = () => new Promise((resolve) => setImmediate(resolve));

describe("FrameDelivery", () => {
  it("hands over events and a turn_done after them at once, and what follows them in the same read after the event loop ran", async () => {
    const got: AgentToHost[][] = [];
    const delivery = new FrameDelivery((frames) => got.push(frames));
    delivery.push([event(1), event(2)]);
    delivery.push([log, event(3)]); // no leading events: whole
    delivery.push([event(4), done]); // a turn's last events and its end: whole (recorded together)
    expect(got).toEqual([
      [event(1), event(2)],
      [log, event(3)],
      [event(4), done],
    ]);
    got.length = 0;
    delivery.push([event(5), done, log]);
    delivery.push([event(6)]); // arrives before the rest was handed over: waits behind it
    expect(got).toEqual([[event(5), done]]);
    await nextTick();
    await nextTick();
    expect(got).toEqual([[event(5), done], [log], [event(6)]]);
  });

  it("keeps cutting while it drains, and flush() hands over everything at once", async () => {
    const got: AgentToHost[][] = [];
    const delivery = new FrameDelivery((frames) => got.push(frames));
    delivery.push([event(1), log, event(2), log]);
    delivery.push([done]);
    expect(got).toEqual([[event(1)]]);
    await nextTick();
    expect(got).toEqual([[event(1)], [log, event(2), log], [done]]);
    delivery.push([event(3), log]);
    delivery.push([event(4), done]);
    expect(got).toHaveLength(4);
    delivery.flush();
    expect(got).toEqual([[event(1)], [log, event(2), log], [done], [event(3)], [log], [event(4), done]]);
    await nextTick();
    expect(got).toHaveLength(6);
  });
});
