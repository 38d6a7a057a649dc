/** A row of messages.db as the store hands it out, and its database form. */
import type { JsonObject } from "../../shared/json.js";

export type MessageDirection = "inbound" | "outbound";

export interface MessageRow {
  seq: number;
  direction: MessageDirection;
  instanceId: string;
  turn: number;
  messageType: string;
  content: JsonObject | undefined;
  /** Epoch milliseconds. */
  timestamp: number;
}

export type NewMessage = Omit<MessageRow, "seq">;

/** A row as `.raw()` statements return it. */
export type DbRow = [seq: number, direction: MessageDirection, instanceId: string, turn: number, messageType: string, content: string | null, timestamp: number];

/** The columns of a row, in the order of DbRow. */
export const COLUMNS = "seq, direction, instance_id, turn, message_type, content, timestamp";

export function fromDb(row: DbRow): MessageRow {
  return {
    seq: row[0],
    direction: row[1],
    instanceId: row[2],
    turn: row[3],
    messageType: row[4],
    content: row[5] === null ? undefined : (JSON.parse(row[5]) as JsonObject),
    timestamp: row[6],
  };
}
