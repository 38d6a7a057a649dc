/** Conversions from coordinator-side records to the generated protobuf messages. */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { AgentInstance } from "./agent-instance.js";
import type { InstanceStatusName } from "./agent-instance-options.js";
import type { MessageRow } from "./store/message-log.js";
import type { LogRow } from "./store/log-store.js";
import { InstanceSchema, InstanceStatus, ProcessExitSchema, Runtime, type Instance } from "../../gen/podium/v1/instance_pb.js";
import { LogRecordSchema, MessageDirection, MessageRecordSchema, ScheduleSchema, type LogRecord, type MessageRecord, type Schedule } from "../../gen/podium/v1/agent_history_pb.js";
import type { ScheduleRow } from "./store/schedule-store.js";
import type { StreamUpdate } from "../../gen/podium/v1/stream_update_pb.js";

const STATUS: Record<InstanceStatusName, InstanceStatus> = {
  starting: InstanceStatus.STARTING,
  ready: InstanceStatus.READY,
  busy: InstanceStatus.BUSY,
  stopping: InstanceStatus.STOPPING,
  hibernated: InstanceStatus.HIBERNATED,
  terminated: InstanceStatus.TERMINATED,
  failed: InstanceStatus.FAILED,
};

export function runtimeToProto(runtime: "python" | "typescript"): Runtime {
  return runtime === "python" ? Runtime.PYTHON : Runtime.TYPESCRIPT;
}

export function instanceToProto(instance: AgentInstance, coordinatorId: string, lastSeq: number): Instance {
  return create(InstanceSchema, {
    instanceId: instance.instanceId,
    agentId: instance.agentId,
    deploymentId: instance.deploymentId,
    status: STATUS[instance.status],
    runtime: runtimeToProto(instance.runtime),
    coordinatorId,
    createdAt: timestampFromMs(instance.createdAt),
    ...(instance.readyAt ? { readyAt: timestampFromMs(instance.readyAt) } : {}),
    ...(instance.endedAt ? { endedAt: timestampFromMs(instance.endedAt) } : {}),
    ...(instance.hibernatedAt !== undefined && instance.status === "hibernated" ? { hibernatedAt: timestampFromMs(instance.hibernatedAt) } : {}),
    pid: instance.pid,
    ...(instance.exit
      ? {
          exit: create(ProcessExitSchema, {
            ...(instance.exit.code !== null ? { code: instance.exit.code } : {}),
            signal: instance.exit.signal ?? "",
            reason: instance.exit.reason,
          }),
        }
      : {}),
    lastSeq: BigInt(lastSeq),
    queuedMessages: instance.queuedMessages,
  });
}

/**
 * Built as the literal protobuf-es would make (`create` is reflective: ~5x the cost, and every streamed event
 * goes through here); test/coordinator/to-proto.test.ts holds it equal to `create`'s.
 */
export function rowToStreamUpdate(row: MessageRow, agentId: string): StreamUpdate {
  const update: StreamUpdate = {
    $typeName: "podium.v1.StreamUpdate",
    instanceId: row.instanceId,
    agentId,
    seq: BigInt(row.seq),
    timestamp: { $typeName: "google.protobuf.Timestamp", seconds: BigInt(Math.floor(row.timestamp / 1000)), nanos: (row.timestamp % 1000) * 1_000_000 },
    messageType: row.messageType,
    turn: BigInt(row.turn),
  };
  if (row.content) update.content = row.content;
  return update;
}

export function rowToMessageRecord(row: MessageRow): MessageRecord {
  return create(MessageRecordSchema, {
    seq: BigInt(row.seq),
    direction: row.direction === "inbound" ? MessageDirection.INBOUND : MessageDirection.OUTBOUND,
    instanceId: row.instanceId,
    messageType: row.messageType,
    ...(row.content ? { content: row.content } : {}),
    timestamp: timestampFromMs(row.timestamp),
    turn: BigInt(row.turn),
  });
}

export function logRowToProto(row: LogRow): LogRecord {
  return create(LogRecordSchema, {
    id: BigInt(row.id),
    timestamp: timestampFromMs(row.timestamp),
    level: row.level,
    source: row.source,
    message: row.message,
    instanceId: row.instanceId,
    ...(row.fields ? { fields: row.fields } : {}),
  });
}

export function scheduleToProto(row: ScheduleRow): Schedule {
  const when: Schedule["when"] =
    row.kind === "delay" ? { case: "delayMs", value: BigInt(row.spec) } : row.kind === "date" ? { case: "at", value: timestampFromMs(Date.parse(row.spec)) } : { case: "cron", value: row.spec };
  return create(ScheduleSchema, {
    id: row.id,
    when,
    message: row.message,
    dueAt: timestampFromMs(row.dueAt),
    createdAt: timestampFromMs(row.createdAt),
    source: row.source,
  });
}
