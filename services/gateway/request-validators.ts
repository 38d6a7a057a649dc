/**
 * One validator per request message of the public API. The shared handlers (gateway-handlers.ts) call them,
 * so REST, both WebSockets, Connect, gRPC and gRPC-Web refuse the same bad input with the same
 * ConnectError(InvalidArgument) and message. What the edges do before (parse JSON, check a JSON number is
 * an integer) only builds the message; what a valid message is, is said here.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { GetAgentRequest } from "../../gen/podium/v1/agent_history_pb.js";
import type { AnswerRequestRequest, CreateInstanceRequest, SendMessageRequest } from "../../gen/podium/v1/instance_service_pb.js";
import type { FileTarget } from "../../gen/podium/v1/file_service_pb.js";
import type { ForkAgentRequest, GetReplicationStatusRequest } from "../../gen/podium/v1/replication_service_pb.js";
import type { GetDeploymentRequest, UploadDeploymentRequest } from "../../gen/podium/v1/deployment_service_pb.js";

/** Longest id (instance, agent, deployment, request) the API accepts. */
export const MAX_ID_LENGTH = 256;

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

/** An id: optional ones may be empty; none may be longer than MAX_ID_LENGTH. */
function id(value: string, field: string, required = true): void {
  if (!value) {
    if (required) throw invalid(`${field} is required`);
    return;
  }
  if (value.length > MAX_ID_LENGTH) throw invalid(`${field} is longer than ${MAX_ID_LENGTH} characters`);
}

/** The requests that name an instance and nothing else to check (GetInstance, StopInstance, GetState, ...). */
export function validateInstanceRequest(req: { instanceId: string }): void {
  id(req.instanceId, "instance_id");
}

export function validateCreateInstance(req: CreateInstanceRequest): void {
  id(req.deploymentId, "deployment_id");
  id(req.agentId, "agent_id", false);
}

/** A message's content is a JSON object of whatever shape; its `text` (what chat clients send, seed 004), when there, is a string. */
export function validateSendMessage(req: SendMessageRequest): void {
  id(req.instanceId, "instance_id");
  const text = req.content?.["text"];
  if (text !== undefined && typeof text !== "string") throw invalid("content.text must be a string");
}

export function validateAnswerRequest(req: AnswerRequestRequest): void {
  id(req.instanceId, "instance_id");
  id(req.requestId, "request_id");
}

export function validateAgentRequest(req: GetAgentRequest | GetReplicationStatusRequest): void {
  id(req.agentId, "agent_id");
}

export function validateForkAgent(req: ForkAgentRequest): void {
  id(req.sourceAgentId, "source_agent_id");
  id(req.targetAgentId, "target_agent_id", false);
}

/** Every FileService request: whose workspace, and (`needsPath`) which file. */
export function validateFileRequest(req: { target?: FileTarget | undefined; path: string }, needsPath: boolean): void {
  const target = req.target?.target;
  if (!target?.case) throw invalid("target.instance_id or target.agent_id is required");
  id(target.value, target.case === "instanceId" ? "target.instance_id" : "target.agent_id");
  if (needsPath && req.path.replace(/\/+/g, "") === "") throw invalid("path must name a file");
}

export function validateUploadDeployment(req: UploadDeploymentRequest): void {
  if (req.bundle.length === 0) throw invalid("bundle is empty: send the bundle as a .tar.gz archive");
}

export function validateGetDeployment(req: GetDeploymentRequest): void {
  id(req.deploymentId, "deployment_id");
}
