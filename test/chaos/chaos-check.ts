/**
 * The invariants of the chaos run (issue 12), checked after the faults stopped and every client drained:
 *   - every acknowledged message ended with exactly one `turn.done` (it ran, or an `error` says why not),
 *     or an `agent.restored` declared it lost with its coordinator (counted apart: the replication window),
 *     and turns ended in the order they were acknowledged;
 *   - every stream session received exactly the agent's outbound log after its `after_seq` (no gap, no
 *     duplicate, in order, and nothing the log no longer has);
 *   - no agent process runs that the platform does not list;
 *   - no coordinator was declared lost while it was alive.
 */
import type { JsonObject } from "../../services/shared/json.js";
import { turnOutcomes } from "../helpers/delivery-check.js";
import type { AckedMessage, StreamSession } from "./chaos-client.js";

export interface DeliveryFigures {
  acked: number;
  /** Ended with turn.done {ok:true}. */
  ran: number;
  /** Ended with an error saying why (interrupted, instance ended, …). */
  errored: number;
  /** Acknowledged, never ended, and no event says why: must be 0. */
  lost: number;
  /**
   * Acknowledged, never ended, within the range an `agent.restored` event declared lost: the agent was
   * restored from S3 after its coordinator was lost before the message reached S3 (docs/runtime.md "Delivery").
   */
  announced: number;
  /** More than one turn.done. */
  duplicated: number;
  /** Ended out of the order they were acknowledged in. */
  reordered: number;
  /** Why the errored ones did not run, with counts. */
  errors: Record<string, number>;
}

export interface StreamFigures {
  sessions: number;
  events: number;
  /** Events of the log a session should have received and did not. */
  gaps: number;
  /** Events received twice or after a later one. */
  disorder: number;
  /** Events received that the agent's log does not have, and no `agent.restored` declared lost: must be 0. */
  phantom: number;
  /** Events received that a restore cut, within the range its `agent.restored` declared lost. */
  phantomAnnounced: number;
}

/**
 * The seq ranges `agent.restored` events declared lost: after `last_replicated_seq`, before the event
 * (seqs the lost coordinator may have handed out; docs/replication.md).
 */
export function declaredLost(rows: JsonObject[]): (seq: number) => boolean {
  const ranges = rows.filter((r) => r.message_type === "agent.restored").map((r) => [Number((r.content as JsonObject | undefined)?.last_replicated_seq ?? Infinity), Number(r.seq)] as const);
  return (seq) => ranges.some(([last, marker]) => seq > last && seq < marker);
}

/** Delivery of one client's acknowledged messages, from the agent's whole log. */
export function checkDelivery(acked: AckedMessage[], rows: JsonObject[]): DeliveryFigures {
  const turns = acked.map((a) => a.turn);
  const outcomes = turnOutcomes(rows, turns);
  const ends = new Map<number, number>();
  for (const o of outcomes) ends.set(o.turn, (ends.get(o.turn) ?? 0) + 1);
  let reordered = 0;
  let highest = -Infinity;
  for (const o of outcomes) {
    if (o.turn < highest) reordered++;
    highest = Math.max(highest, o.turn);
  }
  const errors: Record<string, number> = {};
  const first = new Map<number, (typeof outcomes)[number]>();
  for (const o of outcomes) if (!first.has(o.turn)) first.set(o.turn, o);
  for (const o of first.values()) {
    if (o.ok) continue;
    const why = (o.error ?? "no error event").replace(/\d+/g, "N").slice(0, 80);
    errors[why] = (errors[why] ?? 0) + 1;
  }
  const unended = turns.filter((t) => !ends.has(t));
  const announced = declaredLost(rows);
  return {
    acked: turns.length,
    ran: [...first.values()].filter((o) => o.ok).length,
    errored: [...first.values()].filter((o) => !o.ok).length,
    lost: unended.filter((t) => !announced(t)).length,
    announced: unended.filter(announced).length,
    duplicated: [...ends.values()].filter((n) => n > 1).length,
    reordered,
    errors,
  };
}

/** For a report: each received event the log does not have, with its session and what the log holds around it. */
export function describePhantoms(sessions: StreamSession[], rows: JsonObject[], limit = 5): string[] {
  const inLog = new Set(rows.filter((r) => r.direction === "outbound").map((r) => Number(r.seq)));
  const brief = (r: JsonObject) => `${String(r.seq)}:${String(r.message_type)}${r.turn ? `/t${String(r.turn)}` : ""}`;
  const out: string[] = [];
  for (const session of sessions) {
    for (const seq of session.seqs) {
      if (inLog.has(seq) || out.length >= limit) continue;
      const near = rows.filter((r) => Math.abs(Number(r.seq) - seq) <= 3 || r.message_type === "agent.restored").map(brief);
      out.push(`seq ${seq} (session on ${session.instanceId} after ${session.afterSeq}; log: ${near.join(" ")})`);
    }
  }
  return out;
}

/** Each session against the log: what it received must be the log's outbound events after its after_seq, up to the last it received. */
export function checkStreams(sessions: StreamSession[], rows: JsonObject[]): StreamFigures {
  const outbound = rows.filter((r) => r.direction === "outbound").map((r) => Number(r.seq));
  const inLog = new Set(outbound);
  const announced = declaredLost(rows);
  const figures: StreamFigures = { sessions: 0, events: 0, gaps: 0, disorder: 0, phantom: 0, phantomAnnounced: 0 };
  for (const session of sessions) {
    if (session.seqs.length === 0) continue;
    figures.sessions++;
    figures.events += session.seqs.length;
    const received = new Set<number>();
    let last = session.afterSeq;
    for (const seq of session.seqs) {
      if (seq <= last || received.has(seq)) figures.disorder++;
      last = Math.max(last, seq);
      received.add(seq);
      if (!inLog.has(seq)) figures[announced(seq) ? "phantomAnnounced" : "phantom"]++;
    }
    for (const seq of outbound) if (seq > session.afterSeq && seq <= last && !received.has(seq)) figures.gaps++;
  }
  return figures;
}

export interface CoordinatorLife {
  id: string;
  startedAt: number;
  /** When it was killed (undefined: still running). */
  killedAt?: number;
}

/**
 * "coordinator lost" lines of the gateways' logs for a coordinator that was alive and had not been killed
 * in the `graceMs` before (a kill is declared within the heartbeat TTL, possibly after its restart).
 */
export function wronglyDeclaredLost(gatewayOutputs: string[], lives: CoordinatorLife[], graceMs = 10_000): string[] {
  const wrong: string[] = [];
  for (const output of gatewayOutputs) {
    for (const line of output.split("\n")) {
      if (!line.includes('"coordinator lost"')) continue;
      let entry: JsonObject;
      try {
        entry = JSON.parse(line) as JsonObject;
      } catch {
        continue;
      }
      const at = Date.parse(String(entry.time));
      const id = String(entry.coordinator_id);
      const own = lives.filter((life) => life.id === id);
      const killedJustBefore = own.some((life) => life.killedAt !== undefined && life.killedAt <= at && at - life.killedAt <= graceMs);
      const alive = own.some((life) => life.startedAt <= at && (life.killedAt === undefined || life.killedAt > at));
      if (alive && !killedJustBefore) wrong.push(`${id} at ${String(entry.time)} (${String(entry.reason)})`);
    }
  }
  return wrong;
}

/** What the invariants are checked on (chaos-run.ts reports these and more). */
export interface InvariantFigures {
  delivery: DeliveryFigures;
  streams: StreamFigures;
  /** Agents whose log could not be read at the end (nothing about them can be verified). */
  unreadable: string[];
  /** Coordinators that exited without being killed ("id (pid, how)"). */
  crashed: string[];
  /** Agent processes running that the platform does not list. */
  orphans: number;
  /** Coordinators declared lost while alive ("id at time (reason)"). */
  wronglyLost: string[];
}

/** The invariants that must hold, as "name: value" for each broken one. */
export function brokenInvariants(report: InvariantFigures): string[] {
  const broken: string[] = [];
  const zero = {
    "messages lost": report.delivery.lost,
    "messages ended twice": report.delivery.duplicated,
    "messages reordered": report.delivery.reordered,
    "stream gaps": report.streams.gaps,
    "stream duplicates or disorder": report.streams.disorder,
    "stream events the log does not have": report.streams.phantom,
    "agents whose log could not be read": report.unreadable.length,
    "coordinators that crashed": report.crashed.length,
    orphans: report.orphans,
    "live coordinators declared lost": report.wronglyLost.length,
  };
  for (const [name, value] of Object.entries(zero)) if (value !== 0) broken.push(`${name}: ${value}`);
  return broken;
}
