/**
 * rowToStreamUpdate builds its message as a literal (it runs for every streamed event); it must stay what
 * protobuf-es's `create` makes of the same fields, and encode the same.
 */
import { describe, expect, it } from "@jest/globals";
import { create, equals, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { StreamUpdateSchema } from "../../gen/podium/v1/stream_update_pb.js";
import { rowToStreamUpdate } from "../../services/coordinator/to-proto.js";
import type { MessageRow } from "../../services/coordinator/store/message-log.js";

const rows: MessageRow[] = [
  { seq: 7, direction: "outbound", instanceId: "inst-1", turn: 3, messageType: "stream_update", content: { text: "hi", n: 1, nested: { a: [1, null] } }, timestamp: 1_765_000_000_123 },
  { seq: 1, direction: "outbound", instanceId: "inst-1", turn: 0, messageType: "terminated", content: undefined, timestamp: 999 },
];

describe("rowToStreamUpdate", () => {
  it.each(rows)("equals create()'s message for $messageType", (row) => {
    const expected = create(StreamUpdateSchema, {
      instanceId: row.instanceId,
      agentId: "agent-1",
      seq: BigInt(row.seq),
      timestamp: timestampFromMs(row.timestamp),
      messageType: row.messageType,
      ...(row.content ? { content: row.content } : {}),
      turn: BigInt(row.turn),
    });
    const actual = rowToStreamUpdate(row, "agent-1");
    expect(actual).toStrictEqual(expected);
    expect(equals(StreamUpdateSchema, actual, expected)).toBe(true);
    expect(toBinary(StreamUpdateSchema, actual)).toEqual(toBinary(StreamUpdateSchema, expected));
  });
});
