/**
 * What the gateway does, independent of protocol: the Connect handlers, the REST API and the
 * WebSocket bridge all call this. It places instances, forwards calls to the owning coordinator,
 * and keeps deployments in the registry.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CoordinatorDirectory } from "./coordinator-directory.js";
import type { DeploymentRegistry } from "../registry/deployment-registry.js";
import type {
  CreateInstanceRequestSchema,
  GetStateRequestSchema,
  GetStateResponse,
  ListLogsRequestSchema,
  ListLogsResponse,
  ListMessagesRequestSchema,
  ListMessagesResponse,
  SendMessageResponse,
} from "../../gen/podium/v1/instance_service_pb.js";
import type { Instance } from "../../gen/podium/v1/instance_pb.js";
import type { StreamUpdate } from "../../gen/podium/v1/stream_update_pb.js";
import type { FileTarget } from "../../gen/podium/v1/file_service_pb.js";
import type { Json, JsonObject } from "../shared/json.js";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

export interface GatewayCoreOptions {
  directory: CoordinatorDirectory;
  registry: DeploymentRegistry;
}

function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new ConnectError(`coordinator returned no ${what}`, Code.Internal);
  return value;
}

export class GatewayCore {
  readonly directory: CoordinatorDirectory;
  readonly registry: DeploymentRegistry;

  constructor(options: GatewayCoreOptions) {
    this.directory = options.directory;
    this.registry = options.registry;
  }

  async createInstance(req: MessageInitShape<typeof CreateInstanceRequestSchema>, signal?: AbortSignal): Promise<Instance> {
    if (!req.deploymentId) throw new ConnectError("deployment_id is required", Code.InvalidArgument);
    const coordinator = await this.directory.place(signal);
    const { instance } = await coordinator.instances.createInstance(req, { signal });
    const created = must(instance, "instance");
    await this.directory.recordInstance({ instanceId: created.instanceId, agentId: created.agentId, coordinatorId: coordinator.id });
    return created;
  }

  async getInstance(instanceId: string, signal?: AbortSignal): Promise<Instance> {
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    return must((await coordinator.instances.getInstance({ instanceId }, { signal })).instance, "instance");
  }

  async listInstances(filter: { agentId?: string; deploymentId?: string }, signal?: AbortSignal): Promise<Instance[]> {
    const coordinators = await this.directory.all(signal);
    const lists = await Promise.all(coordinators.map((c) => c.instances.listInstances(filter, { signal })));
    return lists.flatMap((l) => l.instances);
  }

  async stopInstance(instanceId: string, graceMs: number, signal?: AbortSignal): Promise<Instance> {
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    return must((await coordinator.instances.stopInstance({ instanceId, graceMs }, { signal })).instance, "instance");
  }

  async sendMessage(instanceId: string, content: JsonObject, signal?: AbortSignal): Promise<SendMessageResponse> {
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    return coordinator.instances.sendMessage({ instanceId, content }, { signal });
  }

  async cancelTurn(instanceId: string, turn: bigint, signal?: AbortSignal): Promise<{ cancelled: boolean; turn: bigint }> {
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    return coordinator.instances.cancelTurn({ instanceId, turn }, { signal });
  }

  async answerRequest(instanceId: string, requestId: string, value: Json, signal?: AbortSignal): Promise<void> {
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    await coordinator.instances.answerRequest({ instanceId, requestId, value: fromJson(ValueSchema, value) }, { signal });
  }

  /** Replay-then-live updates of an instance, in the batches the coordinator sends. */
  async *streamUpdateBatches(instanceId: string, after: { afterSeq?: bigint; replayAll?: boolean }, signal?: AbortSignal): AsyncGenerator<StreamUpdate[]> {
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    for await (const res of coordinator.instances.streamUpdates({ instanceId, ...after }, { signal })) {
      if (res.updates.length > 0) yield res.updates;
    }
  }

  /** The same stream, one update at a time. */
  async *streamUpdates(instanceId: string, after: { afterSeq?: bigint; replayAll?: boolean }, signal?: AbortSignal): AsyncGenerator<StreamUpdate> {
    for await (const batch of this.streamUpdateBatches(instanceId, after, signal)) yield* batch;
  }

  async getState(req: MessageInitShape<typeof GetStateRequestSchema> & { instanceId: string }, signal?: AbortSignal): Promise<GetStateResponse> {
    const coordinator = await this.directory.locateInstance(req.instanceId, signal);
    return coordinator.instances.getState(req, { signal });
  }

  async listMessages(req: MessageInitShape<typeof ListMessagesRequestSchema> & { instanceId: string }, signal?: AbortSignal): Promise<ListMessagesResponse> {
    const coordinator = await this.directory.locateInstance(req.instanceId, signal);
    return coordinator.instances.listMessages(req, { signal });
  }

  async listLogs(req: MessageInitShape<typeof ListLogsRequestSchema> & { instanceId: string }, signal?: AbortSignal): Promise<ListLogsResponse> {
    const coordinator = await this.directory.locateInstance(req.instanceId, signal);
    return coordinator.instances.listLogs(req, { signal });
  }

  /** The FileService client of the coordinator that holds the target's workspace. */
  async filesFor(target: FileTarget | undefined, signal?: AbortSignal) {
    switch (target?.target.case) {
      case "instanceId":
        return (await this.directory.locateInstance(target.target.value, signal)).files;
      case "agentId":
        return (await this.directory.locateAgent(target.target.value, signal)).files;
      default:
        throw new ConnectError("target (instance_id or agent_id) is required", Code.InvalidArgument);
    }
  }
}
