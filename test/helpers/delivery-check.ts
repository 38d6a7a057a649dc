/**
 * Checks the delivery promise (docs/runtime.md "Delivery") on an agent's message log as a client reads it:
 * every acknowledged message (its seq = its turn) ends with exactly one `turn.done`; a turn that ran has
 * its answer, a turn that did not run has an `error` saying why; turns end in the order they were sent.
 */
import type { JsonObject } from "../../services/shared/json.js";
import type { RestResult } from "./cluster-processes.js";

export interface TurnOutcome {
  turn: number;
  ok: boolean;
  /** The `error` message of a turn that did not run (to its end). */
  error?: string;
  /** instance_id of its turn.done. */
  instanceId: string;
}

/** Every row of the agent's messages.db through an instance (GET …/messages, paged). */
export async function readMessages(api: (method: string, urlPath: string) => Promise<RestResult>, instanceId: string): Promise<JsonObject[]> {
  const rows: JsonObject[] = [];
  for (let after = 0; ; ) {
    const page = await api("GET", `/api/v1/instances/${instanceId}/messages?after_seq=${after}&limit=1000`);
    if (page.status !== 200) throw new Error(`messages of ${instanceId}: ${page.status} ${JSON.stringify(page.json)}`);
    rows.push(...(page.json.messages as JsonObject[]));
    if (!page.json.next_after_seq) return rows;
    after = Number(page.json.next_after_seq);
  }
}

/** The outcome of each of `turns` that has ended (has a turn.done), in the order the turn.done rows were written. */
export function turnOutcomes(rows: JsonObject[], turns: number[]): TurnOutcome[] {
  const wanted = new Set(turns);
  const outcomes: TurnOutcome[] = [];
  for (const row of rows) {
    const turn = Number(row.turn);
    if (row.direction !== "outbound" || row.message_type !== "turn.done" || !wanted.has(turn)) continue;
    const error = rows.find((r) => r.direction === "outbound" && r.message_type === "error" && Number(r.turn) === turn && Number(r.seq) < Number(row.seq));
    const ok = (row.content as JsonObject | undefined)?.ok === true;
    outcomes.push({ turn, ok, instanceId: String(row.instance_id), ...(error ? { error: String((error.content as JsonObject | undefined)?.message ?? "") } : {}) });
  }
  return outcomes;
}
