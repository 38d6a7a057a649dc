/**
 * What the browser bridge does with each validated client message: process_message, cancel and
 * answer go to the instance (InstanceService), the file messages to FileService of the coordinator
 * holding the instance's workspace. Each returns the reply's `result` object, which is exactly the
 * body the REST API answers for the same operation (docs/client-events.md).
 */
import { create } from "@bufbuild/protobuf";
import type { GatewayCore } from "../gateway/gateway-core.js";
import { fileContentJson, fileEntryJson, iterationJson, scheduleJson, sentJson } from "../gateway/rest-json.js";
import { busyPolicyToProto } from "../shared/busy-policy.js";
import type { JsonObject } from "../shared/json.js";
import { FileTargetSchema } from "../../gen/podium/v1/file_service_pb.js";
import type { ClientMessage } from "./parse-client-message.js";
import { sendFromFrame } from "../gateway/frame-trace.js";
import type { TraceContext } from "../tracing/trace-context.js";

/** The part of GatewayCore the bridge uses (tests may pass a fake). */
export type BridgeCore = Pick<GatewayCore, "sendMessage" | "cancelTurn" | "answerRequest" | "filesFor" | "streamUpdateBatches" | "getInstance" | "listSchedules" | "tracer">;

/** `connectionTrace`: the upgrade request's W3C trace context, for a process_message without its own. */
export async function handleClientMessage(core: BridgeCore, instanceId: string, message: ClientMessage, signal?: AbortSignal, connectionTrace?: TraceContext): Promise<JsonObject> {
  switch (message.type) {
    case "process_message": {
      const strategy = busyPolicyToProto(message.multitask_strategy);
      return sentJson(await sendFromFrame(core, instanceId, message.content, signal, strategy, message.trace ?? connectionTrace, "/api/v1/instances/{id}/events"));
    }
    case "cancel": {
      const result = await core.cancelTurn(instanceId, BigInt(message.turn ?? 0), signal);
      return { cancelled: result.cancelled, turn: Number(result.turn) };
    }
    case "answer":
      await core.answerRequest(instanceId, message.request_id, message.value, signal);
      return { request_id: message.request_id };
    case "list_schedules":
      return { schedules: (await core.listSchedules(instanceId, signal)).map(scheduleJson) };
    default:
      return handleFileMessage(core, instanceId, message, signal);
  }
}

type FileMessage = Extract<ClientMessage, { type: "list_files" | "read_file" | "file_history" | "file_at_iteration" }>;

async function handleFileMessage(core: BridgeCore, instanceId: string, message: FileMessage, signal?: AbortSignal): Promise<JsonObject> {
  const target = create(FileTargetSchema, { target: { case: "instanceId", value: instanceId } });
  const files = await core.filesFor(target, signal);
  switch (message.type) {
    case "list_files": {
      const list = await files.listFiles({ target, path: message.path ?? "", depth: message.depth ?? 1 }, { signal });
      return { entries: list.entries.map(fileEntryJson) };
    }
    case "read_file":
      return fileContentJson((await files.readFile({ target, path: message.path }, { signal })).file);
    case "file_history":
      return { iterations: (await files.fileHistory({ target, path: message.path }, { signal })).iterations.map(iterationJson) };
    case "file_at_iteration":
      return fileContentJson((await files.fileAtIteration({ target, path: message.path, iteration: BigInt(message.iteration) }, { signal })).file);
  }
}
