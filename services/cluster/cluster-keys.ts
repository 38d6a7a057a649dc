/**
 * The Valkey key layout shared by coordinators (writers) and gateways (readers), and the JSON values
 * stored under it. Values come from another process, so every read goes through a parser here.
 * Layout and timings: docs/cluster.md.
 */
import { isJsonObject } from "../shared/json.js";
import { CLIENT_ID_PATTERN } from "../shared/ids.js";

export const DEFAULT_KEY_PREFIX = "podium:";

/** What a coordinator reports about its load on every heartbeat. */
export interface CoordinatorLoad {
  instances: number;
  capacity: number;
  /** One-minute load average divided by the number of cores. */
  cpuLoad: number;
  /** Resident memory of the coordinator and its agents, bytes. */
  memoryBytes: number;
  draining: boolean;
  /** Its agents are replicated to S3 (docs/replication.md): a replicated agent whose coordinator is gone resumes on such a coordinator. */
  replicated?: boolean;
}

/** The value of `<prefix>coordinator:<id>`: identity + load, rewritten every heartbeat. */
export interface CoordinatorHeartbeat extends CoordinatorLoad {
  coordinatorId: string;
  /** Where gateways reach it ("http://10.0.0.5:7100"). */
  address: string;
  /** Epoch ms the coordinator started. */
  startedAt: number;
  version: string;
  /** Epoch ms of this heartbeat (the coordinator's clock; informational). */
  heartbeatAt: number;
  /** The key's TTL, so readers know the detection bound. */
  ttlMs: number;
}

/** Messages on `<prefix>membership`. */
export type MembershipEvent =
  | { type: "join"; coordinatorId: string; info: CoordinatorHeartbeat }
  | { type: "update"; coordinatorId: string; info: CoordinatorHeartbeat }
  | { type: "leave"; coordinatorId: string };

/** The value of `<prefix>instance:<instanceId>`. */
export interface InstanceLocation {
  coordinatorId: string;
  agentId: string;
}

/** Coordinator, instance and agent ids become key segments, so they may not contain ':'. */
export function assertClusterId(id: string, what: string): void {
  if (!CLIENT_ID_PATTERN.test(id)) throw new RangeError(`${what} ${JSON.stringify(id)} must match ${CLIENT_ID_PATTERN.source}`);
}

export class ClusterKeys {
  constructor(readonly prefix: string = DEFAULT_KEY_PREFIX) {}

  /** SET of coordinator ids that have registered and not (yet) been seen gone. */
  get coordinators(): string {
    return `${this.prefix}coordinators`;
  }

  /** STRING (JSON CoordinatorHeartbeat) with a TTL; its presence means "alive". */
  coordinator(coordinatorId: string): string {
    return `${this.prefix}coordinator:${coordinatorId}`;
  }

  /** SET of the live instance ids a coordinator hosts. */
  coordinatorInstances(coordinatorId: string): string {
    return `${this.prefix}coordinator:${coordinatorId}:instances`;
  }

  /** STRING (JSON InstanceLocation); no TTL while live, a retention TTL once ended. */
  instance(instanceId: string): string {
    return `${this.prefix}instance:${instanceId}`;
  }

  /** STRING: the coordinator that last ran the agent (where its data lives). */
  agent(agentId: string): string {
    return `${this.prefix}agent:${agentId}`;
  }

  /** STRING: the coordinator that last wrote the agent's replicated databases (set by replication, docs/replication.md). */
  agentWriter(agentId: string): string {
    return `${this.prefix}agent-writer:${agentId}`;
  }

  /**
   * STRING with a TTL: a dead coordinator's Litestream is still making the agent's final upload (kept
   * by its upload keeper, docs/replication.md); the agent's next owner restores once it is gone.
   */
  agentUploading(agentId: string): string {
    return `${this.prefix}agent-uploading:${agentId}`;
  }

  /** Pub/sub channel of MembershipEvent JSON messages. */
  get membershipChannel(): string {
    return `${this.prefix}membership`;
  }
}

function parseJson(text: string | null | undefined): unknown {
  if (typeof text !== "string") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const isFiniteNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isString = (v: unknown): v is string => typeof v === "string";

export function heartbeatFromJson(json: unknown): CoordinatorHeartbeat | undefined {
  if (!isJsonObject(json)) return undefined;
  const { coordinatorId, address, instances, capacity, cpuLoad, memoryBytes, draining, startedAt, version, heartbeatAt, ttlMs } = json;
  if (!isString(coordinatorId) || !CLIENT_ID_PATTERN.test(coordinatorId) || !isString(address) || !isString(version)) return undefined;
  if (!isFiniteNumber(instances) || !isFiniteNumber(capacity) || !isFiniteNumber(cpuLoad) || !isFiniteNumber(memoryBytes)) return undefined;
  if (!isFiniteNumber(startedAt) || !isFiniteNumber(heartbeatAt) || !isFiniteNumber(ttlMs) || typeof draining !== "boolean") return undefined;
  return { coordinatorId, address, instances, capacity, cpuLoad, memoryBytes, draining, startedAt, version, heartbeatAt, ttlMs, ...(json.replicated === true ? { replicated: true } : {}) };
}

export function parseHeartbeat(text: string | null | undefined): CoordinatorHeartbeat | undefined {
  return heartbeatFromJson(parseJson(text));
}

export function parseMembershipEvent(text: string): MembershipEvent | undefined {
  const json = parseJson(text);
  if (!isJsonObject(json) || !isString(json.coordinatorId)) return undefined;
  const { type, coordinatorId } = json;
  if (type === "leave") return { type, coordinatorId };
  if (type !== "join" && type !== "update") return undefined;
  const info = heartbeatFromJson(json.info);
  return info && info.coordinatorId === coordinatorId ? { type, coordinatorId, info } : undefined;
}

export function parseInstanceLocation(text: string | null | undefined): InstanceLocation | undefined {
  const json = parseJson(text);
  if (!isJsonObject(json)) return undefined;
  const { coordinatorId, agentId } = json;
  return isString(coordinatorId) && isString(agentId) ? { coordinatorId, agentId } : undefined;
}
