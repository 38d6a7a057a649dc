/**
 * The /connect frame is written by hand (updateFrameText, no intermediate object per event): it must be
 * exactly the JSON of the 004 frame.
 */
import { describe, expect, it } from "@jest/globals";
import { updateFrameText } from "../../services/gateway/rest-json.js";
import { rowToStreamUpdate } from "../../services/coordinator/to-proto.js";
import type { JsonObject } from "../../services/shared/json.js";

const update = (messageType: string, content: JsonObject | undefined, turn: number) =>
  rowToStreamUpdate({ seq: 42, direction: "outbound", instanceId: 'inst-"1"', turn, messageType, content, timestamp: 1_765_000_000_123 }, "agent-\u2028");

describe("updateFrameText", () => {
  it.each([
    ["stream_update", { text: 'héllo "quoted" \n\u0000 😀', nested: { list: [1, 2.5, null, true, "x"] } }, 3],
    ["terminated", undefined, 0],
    ["state.delta", {}, 1],
  ])("is the JSON of the frame for %s", (messageType, content, turn) => {
    const expected: JsonObject = { messageType };
    if (content) expected.content = content;
    Object.assign(expected, { agentId: "agent-\u2028", instanceId: 'inst-"1"', seq: 42, timestamp: "2025-12-06T05:46:40.123Z" });
    if (turn > 0) expected.turn = turn;
    expect(updateFrameText(update(messageType, content, turn))).toBe(JSON.stringify(expected));
  });
});
