/**
 * When a schedule runs: `{delay_ms}` (once, that long from now), `{at}` (once, an RFC 3339 time) or
 * `{cron}` (a cron expression in UTC: 5 fields, or 6 with seconds first; parsed by croner). The first
 * two are deleted once fired; a cron moves to its next run after the one it fired for. A run missed
 * while nothing could fire it (its coordinator was down) fires once when it can, with its original
 * `due_at`, and a cron then continues from the present (missed runs are not replayed one by one).
 */
import { Cron } from "croner";
import { Code, ConnectError } from "@connectrpc/connect";
import { isJsonObject, type JsonObject } from "./json.js";
import { parseRfc3339 } from "./rfc3339.js";

/** How a schedule is given. */
export type ScheduleKind = "delay" | "date" | "cron";

/** Schedules one agent may hold at once. */
export const MAX_SCHEDULES = 1000;
const MAX_AHEAD_MS = 10 * 365 * 24 * 3600_000;

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

/** The next run of a cron expression strictly after `after` (epoch ms); undefined when it has none. */
export function nextCronRun(expression: string, after: number): number | undefined {
  let cron: Cron;
  try {
    cron = new Cron(expression, { paused: true, timezone: "UTC" });
  } catch (err) {
    throw invalid(`cron ${JSON.stringify(expression)} is not a valid cron expression (${err instanceof Error ? err.message : String(err)})`);
  }
  return cron.nextRun(new Date(after))?.getTime();
}

/** `when` as the agent or podium.json gives it: exactly one of delay_ms, at, cron. */
export function parseScheduleWhen(when: unknown, now: number): { kind: ScheduleKind; spec: string; dueAt: number } {
  if (!isJsonObject(when)) throw invalid("a schedule's when must be a delay in ms, a date, or a cron expression");
  const keys = ["delay_ms", "at", "cron"].filter((key) => when[key] !== undefined);
  if (keys.length !== 1) throw invalid("a schedule's when must have exactly one of delay_ms, at, cron");
  const { delay_ms: delay, at, cron } = when;
  if (delay !== undefined) {
    if (typeof delay !== "number" || !Number.isFinite(delay) || delay < 0 || delay > MAX_AHEAD_MS) throw invalid(`delay_ms must be a number of ms from 0 to ${MAX_AHEAD_MS}`);
    return { kind: "delay", spec: String(Math.round(delay)), dueAt: now + Math.round(delay) };
  }
  if (at !== undefined) {
    const date = typeof at === "string" ? parseRfc3339(at) : undefined;
    if (!date) throw invalid(`at must be an RFC 3339 time with a zone, e.g. "2026-12-24T18:00:00Z" (got ${JSON.stringify(at)?.slice(0, 60)})`);
    if (date.getTime() > now + MAX_AHEAD_MS) throw invalid("at must be within 10 years");
    // A time already past fires at once (as a missed one would).
    return { kind: "date", spec: date.toISOString(), dueAt: date.getTime() };
  }
  if (typeof cron !== "string" || cron.trim() === "" || cron.length > 256) throw invalid("cron must be a cron expression of at most 256 characters");
  const dueAt = nextCronRun(cron, now);
  if (dueAt === undefined) throw invalid(`cron ${JSON.stringify(cron)} never runs`);
  return { kind: "cron", spec: cron, dueAt };
}

/**
 * podium.json `schedules`: `[{"name": "hourly", "cron": "0 * * * *", "message": {"text": "tick"}}]`, crons
 * every instance of the deployment gets. Throws InvalidArgument naming the bad entry.
 */
export function parseDeclaredSchedules(value: unknown): { name: string; cron: string; message: JsonObject }[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.length > 100) throw invalid('podium.json: "schedules" must be an array of at most 100 {"name", "cron", "message"}');
  const names = new Set<string>();
  return value.map((entry: unknown, i) => {
    const at = `podium.json: schedules[${i}]`;
    if (!isJsonObject(entry)) throw invalid(`${at} must be an object {"name", "cron", "message"}`);
    const { name, cron, message = {} } = entry;
    if (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name) || names.has(name)) throw invalid(`${at}.name must be a unique name of 1-64 letters, digits, '.', '_' or '-'`);
    names.add(name);
    if (!isJsonObject(message)) throw invalid(`${at}.message must be an object`);
    if (typeof cron !== "string") throw invalid(`${at}.cron must be a cron expression`);
    try {
      if (nextCronRun(cron, Date.now()) === undefined) throw invalid(`${at}.cron never runs`);
    } catch (err) {
      throw invalid(`${at}: ${err instanceof ConnectError ? err.rawMessage : String(err)}`);
    }
    return { name, cron, message };
  });
}
