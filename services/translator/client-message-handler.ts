/**
 * What the browser bridge does with each validated client message: each is one RPC of the gateway's shared
 * handlers (gateway-handlers.ts; InstanceService for process_message, cancel, answer and list_schedules,
 * FileService for the file messages), so it is validated and executed exactly as over REST or Connect. Each
 * returns the reply's `result` object, which is exactly the body the REST API answers for the same
 * operation (docs/client-events.md).
 */
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { GatewayCore } from "../gateway/gateway-core.js";
import type { GatewayHandlers } from "../gateway/gateway-handlers.js";
import { callUnary, type EdgeCall } from "../gateway/edge-call.js";
import { fileContentJson, fileEntryJson, iterationJson, scheduleJson, sentJson } from "../gateway/rest-json.js";
import { busyPolicyToProto } from "../shared/busy-policy.js";
import type { JsonObject } from "../shared/json.js";
import { FileService, FileTargetSchema } from "../../gen/podium/v1/file_service_pb.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import type { ClientMessage } from "./parse-client-message.js";
import { sendFromFrame } from "../gateway/frame-trace.js";
import type { TraceContext } from "../tracing/trace-context.js";

/** `connectionTrace`: the upgrade request's W3C trace context, for a process_message without its own. */
export async function handleClientMessage(
  core: Pick<GatewayCore, "tracer">,
  handlers: GatewayHandlers,
  instanceId: string,
  message: ClientMessage,
  signal?: AbortSignal,
  connectionTrace?: TraceContext,
): Promise<JsonObject> {
  const call: EdgeCall = { protocol: "websocket", signal };
  const I = InstanceService.method;
  switch (message.type) {
    case "process_message": {
      const req = { instanceId, content: message.content, multitaskStrategy: busyPolicyToProto(message.multitask_strategy) };
      return sentJson(await sendFromFrame(core, handlers, req, signal, message.trace ?? connectionTrace, "/api/v1/instances/{id}/events"));
    }
    case "cancel": {
      const result = await callUnary(handlers, I.cancelTurn, { instanceId, turn: BigInt(message.turn ?? 0) }, call);
      return { cancelled: result.cancelled, turn: Number(result.turn) };
    }
    case "answer":
      await callUnary(handlers, I.answerRequest, { instanceId, requestId: message.request_id, value: fromJson(ValueSchema, message.value) }, call);
      return { request_id: message.request_id };
    case "list_schedules":
      return { schedules: (await callUnary(handlers, I.listSchedules, { instanceId }, call)).schedules.map(scheduleJson) };
    default:
      return handleFileMessage(handlers, instanceId, message, call);
  }
}

type FileMessage = Extract<ClientMessage, { type: "list_files" | "read_file" | "file_history" | "file_at_iteration" }>;

async function handleFileMessage(handlers: GatewayHandlers, instanceId: string, message: FileMessage, call: EdgeCall): Promise<JsonObject> {
  const target = create(FileTargetSchema, { target: { case: "instanceId", value: instanceId } });
  const F = FileService.method;
  switch (message.type) {
    case "list_files": {
      const list = await callUnary(handlers, F.listFiles, { target, path: message.path ?? "", depth: message.depth ?? 1 }, call);
      return { entries: list.entries.map(fileEntryJson) };
    }
    case "read_file":
      return fileContentJson((await callUnary(handlers, F.readFile, { target, path: message.path }, call)).file);
    case "file_history":
      return { iterations: (await callUnary(handlers, F.fileHistory, { target, path: message.path }, call)).iterations.map(iterationJson) };
    case "file_at_iteration":
      return fileContentJson((await callUnary(handlers, F.fileAtIteration, { target, path: message.path, iteration: BigInt(message.iteration) }, call)).file);
  }
}
