/** Host -> agent frames (services/coordinator/agent-protocol.ts `HostToAgent`), validated at the edge. */
import type { Json, JsonObject } from "./json-value.js";

export interface InitFrame {
  type: "init";
  protocol: number;
  instanceId: string;
  agentId: string;
  deploymentId: string;
  workspace: string;
  env: Record<string, string>;
  state: JsonObject;
  stateVersion: number;
  /** Absolute path of the entry module, for a runner started without one (a warm runner). */
  entry?: string;
}

export type HostFrame =
  | InitFrame
  | { type: "message"; turn: number; content: JsonObject }
  | { type: "answer"; id: string; value: Json }
  | { type: "cancel"; turn: number }
  /** `hibernate`: the instance hibernates (onHibernate runs instead of onStop); a later process resumes it. */
  | { type: "stop"; graceMs: number; hibernate?: boolean };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function turnOf(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) throw new Error(`${what} must be a non-negative integer`);
  return value;
}

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function stringRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isObject(value)) for (const [key, v] of Object.entries(value)) if (typeof v === "string") out[key] = v;
  return out;
}

/** Parses one host line. Throws Error with a reason on anything malformed. */
export function parseHostFrame(line: string): HostFrame {
  const value: unknown = JSON.parse(line);
  if (!isObject(value) || typeof value.type !== "string") throw new Error("frame has no type");
  switch (value.type) {
    case "init":
      return {
        type: "init",
        protocol: typeof value.protocol === "number" ? value.protocol : 1,
        instanceId: text(value.instanceId),
        agentId: text(value.agentId),
        deploymentId: text(value.deploymentId),
        workspace: text(value.workspace) || process.cwd(),
        env: stringRecord(value.env),
        state: isObject(value.state) ? (value.state as JsonObject) : {},
        stateVersion: typeof value.stateVersion === "number" ? value.stateVersion : 0,
        ...(typeof value.entry === "string" && value.entry ? { entry: value.entry } : {}),
      };
    case "message":
      return { type: "message", turn: turnOf(value.turn, "message.turn"), content: isObject(value.content) ? (value.content as JsonObject) : {} };
    case "answer":
      if (typeof value.id !== "string") throw new Error("answer.id must be a string");
      return { type: "answer", id: value.id, value: (value.value ?? null) as Json };
    case "cancel":
      return { type: "cancel", turn: turnOf(value.turn, "cancel.turn") };
    case "stop":
      return { type: "stop", graceMs: typeof value.graceMs === "number" && value.graceMs >= 0 ? value.graceMs : 5000, ...(value.hibernate === true ? { hibernate: true } : {}) };
    default:
      throw new Error(`unknown frame type ${JSON.stringify(value.type).slice(0, 40)}`);
  }
}
