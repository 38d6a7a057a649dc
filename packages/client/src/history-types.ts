/** The agent's state and logs as the client returns them (normalised from the REST answers). */
import { protocolError } from "./http-request.js";
import { count, isRecord, str, time } from "./json-fields.js";

/** One state version's RFC 6902 operations. */
export interface StatePatch {
  version: number;
  ops: Record<string, unknown>[];
  /** RFC 3339, when known. */
  timestamp?: string;
}

export interface StateView {
  /** The version the state (or the last patch) is at. */
  version: number;
  /** The whole state (absent when patches since a version were asked for). */
  state?: Record<string, unknown>;
  /** With `since`: the patches after it; with `at`: the patch that made that version, while it is kept. */
  patches: StatePatch[];
}

export interface LogRecord {
  id: number;
  /** RFC 3339, when known. */
  timestamp?: string;
  level: string;
  /** "agent" (what the agent logged), "stdout", "stderr" or "platform". */
  source: string;
  message: string;
  instanceId: string;
  fields?: Record<string, unknown>;
}

export interface LogPage {
  logs: LogRecord[];
  /** Pass as `after` for the next page; undefined when this was the last. */
  nextAfter?: number;
}

export function toStateView(body: unknown, what: string): StateView {
  if (!isRecord(body)) throw protocolError(what, "expected an object");
  const version = count(body, "version");
  if (version === undefined) throw protocolError(what, "no version in the answer");
  const list = body.patches ?? [];
  if (!Array.isArray(list)) throw protocolError(what, "patches is not a list");
  const patches = list.map((item): StatePatch => {
    const v = isRecord(item) ? count(item, "version") : undefined;
    if (!isRecord(item) || v === undefined || !Array.isArray(item.patch)) throw protocolError(what, "a patch has no version or operations");
    const patch: StatePatch = { version: v, ops: item.patch.filter(isRecord) };
    const timestamp = time(item, "timestamp");
    if (timestamp) patch.timestamp = timestamp;
    return patch;
  });
  return isRecord(body.state) ? { version, state: body.state, patches } : { version, patches };
}

export function toLogPage(body: unknown, what: string): LogPage {
  if (!isRecord(body)) throw protocolError(what, "expected an object");
  const list = body.logs ?? [];
  if (!Array.isArray(list)) throw protocolError(what, "logs is not a list");
  const logs = list.map((item): LogRecord => {
    const id = isRecord(item) ? count(item, "id") : undefined;
    if (!isRecord(item) || id === undefined) throw protocolError(what, "a log record has no id");
    const record: LogRecord = { id, level: str(item, "level") ?? "info", source: str(item, "source") ?? "", message: str(item, "message") ?? "", instanceId: str(item, "instance_id") ?? "" };
    const timestamp = time(item, "timestamp");
    if (timestamp) record.timestamp = timestamp;
    if (isRecord(item.fields)) record.fields = item.fields;
    return record;
  });
  const next = count(body, "next_after");
  return next ? { logs, nextAfter: next } : { logs };
}
