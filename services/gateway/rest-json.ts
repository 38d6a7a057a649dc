/**
 * The REST API's JSON shapes (snake_case, as in the client contract). Enums are lower-case words,
 * 64-bit counters are JSON numbers, times are RFC 3339 strings.
 */
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { InstanceStatus, Runtime, type Instance } from "../../gen/podium/v1/instance_pb.js";
import type { StreamUpdate } from "../../gen/podium/v1/stream_update_pb.js";
import { MessageDirection, type LogRecord, type MessageRecord, type Schedule } from "../../gen/podium/v1/agent_history_pb.js";
import type { SendMessageResponse } from "../../gen/podium/v1/instance_service_pb.js";
import type { Deployment } from "../../gen/podium/v1/deployment_service_pb.js";
import type { FileContent, FileEntry, IterationMeta } from "../../gen/podium/v1/file_service_pb.js";
import type { ForkAgentResponse, ReplicationStatus } from "../../gen/podium/v1/replication_service_pb.js";
import type { Json, JsonObject } from "../shared/json.js";

let lastSeconds = -1n;
let lastNanos = -1;
let lastIso = "";

/** RFC 3339 text of a Timestamp. Bursts of events share a millisecond, so the last one is reused. */
export function iso(ts: Timestamp | undefined): string | null {
  if (!ts) return null;
  if (ts.seconds !== lastSeconds || ts.nanos !== lastNanos) {
    lastSeconds = ts.seconds;
    lastNanos = ts.nanos;
    lastIso = timestampDate(ts).toISOString();
  }
  return lastIso;
}

const STATUS_NAMES: Record<InstanceStatus, string> = {
  [InstanceStatus.UNSPECIFIED]: "unknown",
  [InstanceStatus.STARTING]: "starting",
  [InstanceStatus.READY]: "ready",
  [InstanceStatus.BUSY]: "busy",
  [InstanceStatus.STOPPING]: "stopping",
  [InstanceStatus.TERMINATED]: "terminated",
  [InstanceStatus.FAILED]: "failed",
  [InstanceStatus.HIBERNATED]: "hibernated",
};

export function statusName(status: InstanceStatus): string {
  return STATUS_NAMES[status] ?? "unknown";
}

export function isLive(instance: Instance): boolean {
  return instance.status !== InstanceStatus.TERMINATED && instance.status !== InstanceStatus.FAILED;
}

export function runtimeName(runtime: Runtime): string {
  return runtime === Runtime.PYTHON ? "python" : runtime === Runtime.TYPESCRIPT ? "typescript" : "unknown";
}

export function instanceJson(i: Instance): JsonObject {
  const json: JsonObject = {
    instance_id: i.instanceId,
    agent_id: i.agentId,
    deployment_id: i.deploymentId,
    status: statusName(i.status),
    runtime: runtimeName(i.runtime),
    coordinator_id: i.coordinatorId,
    created_at: iso(i.createdAt),
    ready_at: iso(i.readyAt),
    ended_at: iso(i.endedAt),
    pid: i.pid || null,
    exit: i.exit ? { code: i.exit.code ?? null, signal: i.exit.signal || null, reason: i.exit.reason } : null,
    last_seq: Number(i.lastSeq),
    queued_messages: i.queuedMessages,
  };
  if (i.status === InstanceStatus.HIBERNATED) json.hibernated_at = iso(i.hibernatedAt);
  return json;
}

/** The WebSocket `/connect` frame: `{"messageType","content","agentId","instanceId","seq","timestamp","turn"}`. */
/** The /connect frame of an update, `{messageType, content?, agentId, instanceId, seq, timestamp, turn?}`, as JSON text. */
export function updateFrameText(u: StreamUpdate): string {
  const content = u.content ? `,"content":${JSON.stringify(u.content)}` : "";
  const turn = u.turn > 0n ? `,"turn":${Number(u.turn)}` : "";
  return `{"messageType":${JSON.stringify(u.messageType)}${content},"agentId":${JSON.stringify(u.agentId)},"instanceId":${JSON.stringify(u.instanceId)},"seq":${Number(u.seq)},"timestamp":${JSON.stringify(iso(u.timestamp))}${turn}}`;
}

export function messageJson(m: MessageRecord): JsonObject {
  return {
    seq: Number(m.seq),
    direction: m.direction === MessageDirection.INBOUND ? "inbound" : "outbound",
    instance_id: m.instanceId,
    message_type: m.messageType,
    content: m.content ?? null,
    timestamp: iso(m.timestamp),
    turn: Number(m.turn),
  };
}

export function logJson(l: LogRecord): JsonObject {
  return {
    id: Number(l.id),
    timestamp: iso(l.timestamp),
    level: l.level,
    source: l.source,
    message: l.message,
    instance_id: l.instanceId,
    ...(l.fields ? { fields: l.fields } : {}),
  };
}

export function deploymentJson(d: Deployment): JsonObject {
  return {
    deployment_id: d.deploymentId,
    name: d.name,
    version: d.version,
    runtime: runtimeName(d.runtime),
    entry: d.entry,
    digest: d.digest,
    size: Number(d.size),
    created_at: iso(d.createdAt),
    registry: d.registry,
  };
}

export function fileEntryJson(e: FileEntry): JsonObject {
  return { path: e.path, name: e.name, type: e.type, size: Number(e.size), modified_at: iso(e.modifiedAt), iteration: Number(e.iteration) };
}

export function fileContentJson(f: FileContent | undefined): JsonObject {
  if (!f) return {};
  return { path: f.path, content: f.content, encoding: f.encoding, size: Number(f.size), iteration: Number(f.iteration), hash: f.hash };
}

export function iterationJson(m: IterationMeta): JsonObject {
  return { iteration: Number(m.iteration), timestamp: iso(m.timestamp), size: Number(m.size), hash: m.hash, change: m.change };
}

export function patchesJson(patches: { version: bigint; patch: JsonObject[]; timestamp?: Timestamp | undefined }[]): Json[] {
  return patches.map((p) => ({ version: Number(p.version), patch: p.patch, timestamp: iso(p.timestamp) }));
}

/** GET /api/v1/agents/{id}/replication (docs/replication.md); unknown generation / position are null. */
export function replicationJson(r: ReplicationStatus): JsonObject {
  return {
    agent_id: r.agentId,
    state: r.state,
    lag_ms: Number(r.lagMs),
    generation: r.generation || null,
    position: r.position || null,
    last_sync_at: iso(r.lastSyncAt),
    restarts: r.restarts,
    last_error: r.lastError || null,
    coordinator_id: r.coordinatorId,
    databases: r.databases.map((d) => ({
      name: d.name,
      lag_ms: Number(d.lagMs),
      generation: d.generation || null,
      position: d.position || null,
      last_sync_at: iso(d.lastSyncAt),
    })),
  };
}

/** POST .../messages (and the bridges' process_message result); `cancelled_turns` only when a message interrupted some. */
export function sentJson(s: SendMessageResponse): JsonObject {
  const sent: JsonObject = { seq: Number(s.seq), turn: Number(s.turn), queue_position: s.queuePosition };
  if (s.cancelledTurns.length > 0) sent.cancelled_turns = s.cancelledTurns.map(Number);
  return sent;
}

/** GET .../schedules: a schedule as the agent's ctx.schedules() sees it. */
export function scheduleJson(s: Schedule): JsonObject {
  const when: JsonObject = s.when.case === "delayMs" ? { delay_ms: Number(s.when.value) } : s.when.case === "at" ? { at: iso(s.when.value) } : { cron: s.when.value ?? "" };
  return { id: s.id, when, message: s.message ?? {}, due_at: iso(s.dueAt), created_at: iso(s.createdAt), source: s.source };
}

export function forkJson(f: ForkAgentResponse): JsonObject {
  return {
    agent_id: f.agentId,
    source_agent_id: f.sourceAgentId,
    timestamp: iso(f.timestamp),
    restore_ms: Number(f.restoreMs),
    coordinator_id: f.coordinatorId,
  };
}
