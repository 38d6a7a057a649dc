/** The chaos run's delivery and stream checks on hand-made agent logs. */
import { describe, it, expect } from "@jest/globals";
import type { JsonObject } from "../../services/shared/json.js";
import { checkDelivery, checkStreams, declaredLost } from "./chaos-check.js";

const inbound = (seq: number): JsonObject => ({ seq, turn: seq, direction: "inbound", message_type: "process_message" });
const done = (seq: number, turn: number): JsonObject => ({ seq, turn, direction: "outbound", message_type: "turn.done", content: { ok: true }, instance_id: "i" });
const restored = (seq: number, last: number): JsonObject => ({ seq, direction: "outbound", message_type: "agent.restored", content: { last_replicated_seq: last } });
const acked = (...turns: number[]) => turns.map((turn) => ({ turn, text: `m${turn}`, at: 0 }));

describe("chaos checks", () => {
  // Turns 1 and 3 ran; the coordinator died after acknowledging 5 (and sending 6) before they reached S3;
  // the restore kept up to seq 4 and declared the rest lost; turn 1_000_010 was acknowledged after it and never ended.
  const log = [inbound(1), done(2, 1), inbound(3), done(4, 3), restored(1_000_004, 4), inbound(1_000_010)];

  it("tells messages an agent.restored declared lost from messages lost silently", () => {
    expect(checkDelivery(acked(1, 3, 5, 1_000_010), log)).toMatchObject({ acked: 4, ran: 2, errored: 0, lost: 1, announced: 1, duplicated: 0, reordered: 0 });
    const lost = declaredLost(log);
    expect([4, 5, 6, 1_000_003, 1_000_004, 1_000_010].map(lost)).toEqual([false, true, true, true, false, false]);
  });

  it("tells stream events a declared restore cut from events missing from the log for no reason", () => {
    const figures = checkStreams(
      [
        { instanceId: "i", afterSeq: 0, seqs: [2, 4, 6] },
        { instanceId: "j", afterSeq: 1_000_004, seqs: [1_000_011] },
      ],
      log,
    );
    expect(figures).toEqual({ sessions: 2, events: 4, gaps: 0, disorder: 0, phantom: 1, phantomAnnounced: 1 });
  });
});
