/** The gateway's public Connect services: thin handlers over GatewayCore and the registry. */
import type { ConnectRouter } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Json } from "../shared/json.js";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayCore } from "./gateway-core.js";
import { InstanceService, type StreamUpdatesResponseSchema } from "../../gen/podium/v1/instance_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { FileService } from "../../gen/podium/v1/file_service_pb.js";
import { DeploymentService } from "../../gen/podium/v1/deployment_service_pb.js";
import { deploymentToProto } from "../registry/to-proto.js";
import { resolveDeploymentId } from "../registry/deployment-registry.js";
import { ReplicationService } from "../../gen/podium/v1/replication_service_pb.js";
import { inRpcSpan, rpcServerSpan } from "../tracing/rpc-trace.js";

function requireField(value: string, field: string): string {
  if (!value) throw new ConnectError(`${field} is required`, Code.InvalidArgument);
  return value;
}

export function gatewayRoutes(core: GatewayCore) {
  return (router: ConnectRouter) => {
    router.service(InstanceService, {
      async createInstance(req, ctx) {
        return { instance: await core.createInstance(req, ctx.signal) };
      },
      async getInstance(req, ctx) {
        return { instance: await core.getInstance(requireField(req.instanceId, "instance_id"), ctx.signal) };
      },
      async listInstances(req, ctx) {
        return { instances: await core.listInstances({ agentId: req.agentId, deploymentId: req.deploymentId }, ctx.signal) };
      },
      async stopInstance(req, ctx) {
        return { instance: await core.stopInstance(requireField(req.instanceId, "instance_id"), req.graceMs, ctx.signal) };
      },
      async sendMessage(req, ctx) {
        const instanceId = requireField(req.instanceId, "instance_id");
        const span = rpcServerSpan(core.tracer, ctx, instanceId);
        return inRpcSpan(span, "server", () => core.sendMessage(instanceId, req.content ?? {}, ctx.signal, req.multitaskStrategy, span));
      },
      async cancelTurn(req, ctx) {
        return core.cancelTurn(requireField(req.instanceId, "instance_id"), req.turn, ctx.signal);
      },
      async answerRequest(req, ctx) {
        await core.answerRequest(requireField(req.instanceId, "instance_id"), requireField(req.requestId, "request_id"), req.value ? (toJson(ValueSchema, req.value) as Json) : null, ctx.signal);
        return {};
      },
      async *streamUpdates(req, ctx): AsyncGenerator<MessageInitShape<typeof StreamUpdatesResponseSchema>> {
        const instanceId = requireField(req.instanceId, "instance_id");
        for await (const updates of core.streamUpdateBatches(instanceId, { afterSeq: req.afterSeq, replayAll: req.replayAll }, ctx.signal)) {
          yield { updates };
        }
      },
      async getState(req, ctx) {
        requireField(req.instanceId, "instance_id");
        return core.getState(req, ctx.signal);
      },
      async listMessages(req, ctx) {
        requireField(req.instanceId, "instance_id");
        return core.listMessages(req, ctx.signal);
      },
      async listSchedules(req, ctx) {
        return { schedules: await core.listSchedules(requireField(req.instanceId, "instance_id"), ctx.signal) };
      },
      async getAgent(req, ctx) {
        return core.getAgent(requireField(req.agentId, "agent_id"), ctx.signal);
      },
      async listLogs(req, ctx) {
        requireField(req.instanceId, "instance_id");
        return core.listLogs(req, ctx.signal);
      },
    });
    router.service(FileService, {
      async listFiles(req, ctx) {
        return (await core.filesFor(req.target, ctx.signal)).listFiles(req, { signal: ctx.signal });
      },
      async readFile(req, ctx) {
        return (await core.filesFor(req.target, ctx.signal)).readFile(req, { signal: ctx.signal });
      },
      async fileHistory(req, ctx) {
        return (await core.filesFor(req.target, ctx.signal)).fileHistory(req, { signal: ctx.signal });
      },
      async fileAtIteration(req, ctx) {
        return (await core.filesFor(req.target, ctx.signal)).fileAtIteration(req, { signal: ctx.signal });
      },
      async *downloadFile(req, ctx) {
        yield* (await core.filesFor(req.target, ctx.signal)).downloadFile(req, { signal: ctx.signal });
      },
      async restoreFile(req, ctx) {
        return (await core.filesFor(req.target, ctx.signal)).restoreFile(req, { signal: ctx.signal });
      },
    });
    router.service(ReplicationService, {
      async getReplicationStatus(req, ctx) {
        return { status: await core.replicationStatus(requireField(req.agentId, "agent_id"), ctx.signal) };
      },
      async forkAgent(req, ctx) {
        requireField(req.sourceAgentId, "source_agent_id");
        return core.forkAgent(req, ctx.signal);
      },
    });
    router.service(DeploymentService, {
      async uploadDeployment(req, ctx) {
        if (req.bundle.length === 0) throw new ConnectError("bundle is empty", Code.InvalidArgument);
        const { deployment, created } = await core.registry.upload(Buffer.from(req.bundle), ctx.signal);
        return { deployment: deploymentToProto(deployment), created };
      },
      async listDeployments() {
        return { deployments: (await core.registry.list()).map(deploymentToProto) };
      },
      async getDeployment(req) {
        const deployment = await core.registry.get(resolveDeploymentId(requireField(req.deploymentId, "deployment_id"), core.registry.name).id);
        if (!deployment) throw new ConnectError(`unknown deployment ${req.deploymentId}`, Code.NotFound);
        return { deployment: deploymentToProto(deployment) };
      },
    });
  };
}
