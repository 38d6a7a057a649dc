/**
 * The one implementation of the gateway's public API: InstanceService, FileService, ReplicationService and
 * DeploymentService as plain service implementations over GatewayCore. The Connect router (Connect, gRPC,
 * gRPC-Web) mounts them (gateway-routes.ts); the REST table (rest-routes.ts) and the WebSockets `/connect`
 * (ws-bridge.ts) and `/events` (services/translator) call the same functions through edge-call.ts. Each
 * handler validates its request with the message's one validator (request-validators.ts) first.
 */
import { toJson, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Json } from "../shared/json.js";
import { signalToPass } from "../shared/in-process-context.js";
import type { GatewayCore } from "./gateway-core.js";
import { InstanceService, type StreamUpdatesResponseSchema } from "../../gen/podium/v1/instance_service_pb.js";
import { FileService } from "../../gen/podium/v1/file_service_pb.js";
import { DeploymentService } from "../../gen/podium/v1/deployment_service_pb.js";
import { ReplicationService } from "../../gen/podium/v1/replication_service_pb.js";
import { deploymentToProto } from "../registry/to-proto.js";
import { resolveDeploymentId } from "../registry/deployment-registry.js";
import { inRpcSpan, rpcServerSpan } from "../tracing/rpc-trace.js";
import type { Span } from "../tracing/tracer.js";
import { edgeSpanKey, streamAgentKey } from "./edge-call.js";
import * as validate from "./request-validators.js";

export interface GatewayHandlers {
  instance: ServiceImpl<typeof InstanceService>;
  file: ServiceImpl<typeof FileService>;
  replication: ServiceImpl<typeof ReplicationService>;
  deployment: ServiceImpl<typeof DeploymentService>;
  /** The same implementations by service descriptor (what edge-call.ts looks a method up in). */
  byService: ReadonlyMap<DescService, Readonly<Record<string, unknown>>>;
}

/** The public services the gateway itself implements (extensions add theirs). */
export const PUBLIC_SERVICES = [InstanceService, FileService, ReplicationService, DeploymentService] as const;

/** Runs `work` in the adapter's span when there is one, else in a server span of the RPC continuing the caller's traceparent. */
function inServerSpan<T>(core: GatewayCore, ctx: HandlerContext, instanceId: string, work: (span: Span) => Promise<T>): Promise<T> {
  const edge = ctx.values.get(edgeSpanKey);
  if (edge) return work(edge);
  const span = rpcServerSpan(core.tracer, ctx, instanceId);
  return inRpcSpan(span, "server", () => work(span));
}

/** One set per core: the Connect router, REST, the WebSockets and the extensions all get this same object. */
const byCore = new WeakMap<GatewayCore, GatewayHandlers>();

export function gatewayHandlers(core: GatewayCore): GatewayHandlers {
  let handlers = byCore.get(core);
  if (!handlers) byCore.set(core, (handlers = createHandlers(core)));
  return handlers;
}

function createHandlers(core: GatewayCore): GatewayHandlers {
  const instance: ServiceImpl<typeof InstanceService> = {
    async createInstance(req, ctx) {
      validate.validateCreateInstance(req);
      return { instance: await core.createInstance(req, ctx.signal) };
    },
    async getInstance(req, ctx) {
      validate.validateInstanceRequest(req);
      return { instance: await core.getInstance(req.instanceId, ctx.signal) };
    },
    async listInstances(req, ctx) {
      return { instances: await core.listInstances({ agentId: req.agentId, deploymentId: req.deploymentId }, ctx.signal) };
    },
    async stopInstance(req, ctx) {
      validate.validateInstanceRequest(req);
      return { instance: await core.stopInstance(req.instanceId, req.graceMs, ctx.signal) };
    },
    async sendMessage(req, ctx) {
      validate.validateSendMessage(req);
      return inServerSpan(core, ctx, req.instanceId, (span) => core.sendMessage(req.instanceId, req.content ?? {}, signalToPass(ctx), req.multitaskStrategy, span));
    },
    async cancelTurn(req, ctx) {
      validate.validateInstanceRequest(req);
      return core.cancelTurn(req.instanceId, req.turn, ctx.signal);
    },
    async answerRequest(req, ctx) {
      validate.validateAnswerRequest(req);
      await core.answerRequest(req.instanceId, req.requestId, req.value ? (toJson(ValueSchema, req.value) as Json) : null, ctx.signal);
      return {};
    },
    async *streamUpdates(req, ctx): AsyncGenerator<MessageInitShape<typeof StreamUpdatesResponseSchema>> {
      validate.validateInstanceRequest(req);
      const agentId = ctx.values.get(streamAgentKey);
      const start = { afterSeq: req.afterSeq, replayAll: req.replayAll, ...(agentId ? { agentId } : {}) };
      for await (const updates of core.streamUpdateBatches(req.instanceId, start, ctx.signal)) yield { updates };
    },
    async getState(req, ctx) {
      validate.validateInstanceRequest(req);
      return core.getState(req, ctx.signal);
    },
    async listMessages(req, ctx) {
      validate.validateInstanceRequest(req);
      return core.listMessages(req, ctx.signal);
    },
    async listSchedules(req, ctx) {
      validate.validateInstanceRequest(req);
      return { schedules: await core.listSchedules(req.instanceId, ctx.signal) };
    },
    async getAgent(req, ctx) {
      validate.validateAgentRequest(req);
      return core.getAgent(req.agentId, ctx.signal);
    },
    async listLogs(req, ctx) {
      validate.validateInstanceRequest(req);
      return core.listLogs(req, ctx.signal);
    },
  };
  const file: ServiceImpl<typeof FileService> = {
    async listFiles(req, ctx) {
      validate.validateFileRequest(req, false);
      return (await core.filesFor(req.target, ctx.signal)).listFiles(req, { signal: ctx.signal });
    },
    async readFile(req, ctx) {
      validate.validateFileRequest(req, true);
      return (await core.filesFor(req.target, ctx.signal)).readFile(req, { signal: ctx.signal });
    },
    async fileHistory(req, ctx) {
      validate.validateFileRequest(req, true);
      return (await core.filesFor(req.target, ctx.signal)).fileHistory(req, { signal: ctx.signal });
    },
    async fileAtIteration(req, ctx) {
      validate.validateFileRequest(req, true);
      return (await core.filesFor(req.target, ctx.signal)).fileAtIteration(req, { signal: ctx.signal });
    },
    async *downloadFile(req, ctx) {
      validate.validateFileRequest(req, true);
      yield* (await core.filesFor(req.target, ctx.signal)).downloadFile(req, { signal: ctx.signal });
    },
    async restoreFile(req, ctx) {
      validate.validateFileRequest(req, true);
      return (await core.filesFor(req.target, ctx.signal)).restoreFile(req, { signal: ctx.signal });
    },
  };
  const replication: ServiceImpl<typeof ReplicationService> = {
    async getReplicationStatus(req, ctx) {
      validate.validateAgentRequest(req);
      return { status: await core.replicationStatus(req.agentId, ctx.signal) };
    },
    async forkAgent(req, ctx) {
      validate.validateForkAgent(req);
      return core.forkAgent(req, ctx.signal);
    },
  };
  const deployment: ServiceImpl<typeof DeploymentService> = {
    async uploadDeployment(req, ctx) {
      validate.validateUploadDeployment(req);
      const { deployment, created } = await core.registry.upload(Buffer.from(req.bundle.buffer, req.bundle.byteOffset, req.bundle.byteLength), ctx.signal);
      return { deployment: deploymentToProto(deployment), created };
    },
    async listDeployments() {
      return { deployments: (await core.registry.list()).map(deploymentToProto) };
    },
    async getDeployment(req) {
      validate.validateGetDeployment(req);
      const found = await core.registry.get(resolveDeploymentId(req.deploymentId, core.registry.name).id);
      if (!found) throw new ConnectError(`unknown deployment ${req.deploymentId}`, Code.NotFound);
      return { deployment: deploymentToProto(found) };
    },
  };
  const byService = new Map<DescService, Readonly<Record<string, unknown>>>([
    [InstanceService, instance],
    [FileService, file],
    [ReplicationService, replication],
    [DeploymentService, deployment],
  ]);
  return { instance, file, replication, deployment, byService };
}
