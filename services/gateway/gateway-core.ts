/**
 * What the gateway does, independent of protocol: the Connect handlers, the REST API and the
 * WebSocket bridge all call this. It places instances, forwards calls to the owning coordinator,
 * and keeps deployments in the registry.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CoordinatorClients, CoordinatorDirectory } from "./coordinator-directory.js";
import type { ForkAgentRequestSchema, ForkAgentResponse, ReplicationStatus } from "../../gen/podium/v1/replication_service_pb.js";
import type { DeploymentRegistry } from "../registry/deployment-registry.js";
import type {
  GetStateRequestSchema,
  GetAgentResponse,
  GetStateResponse,
  ListLogsRequestSchema,
  ListLogsResponse,
  ListMessagesRequestSchema,
  ListMessagesResponse,
  Schedule,
} from "../../gen/podium/v1/agent_history_pb.js";
import { MultitaskStrategy, type CreateInstanceRequestSchema, type SendMessageResponse } from "../../gen/podium/v1/instance_service_pb.js";
import type { Instance } from "../../gen/podium/v1/instance_pb.js";
import type { StreamUpdate } from "../../gen/podium/v1/stream_update_pb.js";
import type { FileTarget } from "../../gen/podium/v1/file_service_pb.js";
import type { Json, JsonObject } from "../shared/json.js";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorMessage, withRetryAfter } from "../shared/errors.js";
import { callFailure } from "./call-failure.js";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { StreamUpdateSchema } from "../../gen/podium/v1/stream_update_pb.js";
import { PlatformEvent } from "../shared/platform-events.js";
import { SpanKind, type Span, type SpanSink, type Tracer } from "../tracing/tracer.js";
import { SpanBuffer, spanTracer } from "../tracing/span-buffer.js";
import { inRpcSpan } from "../tracing/rpc-trace.js";
import { traceHeaders } from "../tracing/trace-context.js";
import { eitherSignal } from "../shared/either-signal.js";

/** Where an update stream starts: after a seq, or the whole history; without either, live. */
export interface StreamStart {
  afterSeq?: bigint;
  replayAll?: boolean;
  /** The instance's agent, if the caller knows it: named in a `terminated` synthesized before any event was relayed. */
  agentId?: string;
}

export interface GatewayCoreOptions {
  directory: CoordinatorDirectory;
  /** Retry window for a broken upstream stream (defaults: gateway-options.ts). */
  resumeWindowMs: number;
  /**
   * How long a create of a named agent keeps asking while the agent's coordinator is unreachable (until
   * discovery declares it gone and a replicated agent resumes elsewhere).
   */
  failoverWaitMs: number;
  registry: DeploymentRegistry;
  /**
   * The OTLP batcher its spans also go to (tracing.ts): then every request is traced. Without one only requests
   * under a caller's sampled traceparent are. Either way they are kept in `spans` for GET /api/v1/traces/{id}.
   */
  spanExporter?: SpanSink;
}

/** Codes of a coordinator that cannot be reached (as opposed to one that answered with an error). */
const UNREACHABLE = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown]);

function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new ConnectError(`coordinator returned no ${what}`, Code.Internal);
  return value;
}

export class GatewayCore {
  readonly directory: CoordinatorDirectory;
  readonly registry: DeploymentRegistry;
  readonly tracer: Tracer;
  /** The gateway's last finished spans (span-buffer.ts). */
  readonly spans = new SpanBuffer();

  /** How long a broken upstream stream is retried before clients are told the instance is gone. */
  private readonly resumeWindowMs: number;
  private readonly failoverWaitMs: number;
  /** coordinatorId -> aborters of the streams currently proxied from it. */
  private readonly streamsByCoordinator = new Map<string, Set<AbortController>>();

  constructor(options: GatewayCoreOptions) {
    this.resumeWindowMs = options.resumeWindowMs;
    this.failoverWaitMs = options.failoverWaitMs;
    this.directory = options.directory;
    this.registry = options.registry;
    this.tracer = spanTracer("podium-gateway", this.spans, options.spanExporter);
    // ValkeyCoordinatorDirectory reports coordinators that died or left; end their streams with `terminated`.
    const lostSource = options.directory as Partial<{ onCoordinatorLost(listener: (id: string, reason: string) => void): () => void }>;
    lostSource.onCoordinatorLost?.((coordinatorId, reason) => {
      const streams = [...(this.streamsByCoordinator.get(coordinatorId) ?? [])];
      const cut = (): void => {
        for (const aborter of streams) aborter.abort(new CoordinatorLost(coordinatorId));
      };
      // A clean leave (drain) comes after the coordinator stopped its instances: their real `terminated`
      // may still be in flight on the stream (pub/sub is faster), so cut only what is left after a grace.
      if (reason === "left") setTimeout(cut, LEAVE_GRACE_MS).unref();
      else cut();
    });
  }

  /**
   * Places and starts an instance. A create is retried on another coordinator when the first could not
   * have started anything (connection refused, circuit open) or did not answer (reset, cut): always with
   * the same `request_id`, so a coordinator that did get the first attempt answers the retry with that
   * instance instead of starting a second agent. A coordinator that answers it is full, overloaded or
   * draining (RESOURCE_EXHAUSTED / UNAVAILABLE) is passed over for another; when none is left the client
   * gets that answer with a `retry-after` (the coordinator's, else 1 s). Validated by its handler
   * (request-validators.ts), like every call here.
   */
  async createInstance(req: MessageInitShape<typeof CreateInstanceRequestSchema>, signal?: AbortSignal): Promise<Instance> {
    const request = { ...req, requestId: `create-${randomUUID()}` };
    const deadline = Date.now() + this.failoverWaitMs;
    const passedOver = new Set<string>();
    let lastError: unknown;
    for (let attempt = 1; ; attempt++) {
      let coordinator: CoordinatorClients;
      try {
        // Agents resume where their data is (or, replicated, on any replicated coordinator when that is gone).
        coordinator = req.agentId ? await this.directory.placeAgent(req.agentId, signal) : await this.directory.place(signal, { exclude: passedOver });
      } catch (err) {
        // Nowhere left to try: the last coordinator's answer says more than "no coordinator can take it".
        throw withRetryAfter(lastError !== undefined && ConnectError.from(err).code === Code.Unavailable ? lastError : err);
      }
      let instance: Instance | undefined;
      try {
        instance = await this.createOn(coordinator, request, signal);
      } catch (err) {
        if (signal?.aborted) throw err;
        lastError = unreachableAsUnavailable(err, coordinator.id);
        const error = ConnectError.from(err);
        const failure = callFailure(error);
        const busy = error.code === Code.ResourceExhausted || error.code === Code.Unavailable;
        // Unreachable (or draining) home of a named agent: it may be a coordinator that died and is not yet
        // declared gone. Ask again until it is (then a replicated agent resumes elsewhere) or the wait is over.
        if (req.agentId) {
          if ((failure !== "answered" || error.code === Code.Unavailable) && Date.now() < deadline) {
            await sleep(FAILOVER_POLL_MS, signal);
            continue;
          }
          throw withRetryAfter(lastError);
        }
        if ((failure !== "answered" || busy) && attempt < MAX_CREATE_ATTEMPTS) {
          passedOver.add(coordinator.id);
          continue;
        }
        throw withRetryAfter(lastError);
      }
      const created = must(instance, "instance");
      await this.directory.recordInstance({ instanceId: created.instanceId, agentId: created.agentId, coordinatorId: coordinator.id });
      return created;
    }
  }

  /** One create on one coordinator; a call that got no answer is asked once more there (same request id: never two agents). */
  private async createOn(coordinator: CoordinatorClients, request: MessageInitShape<typeof CreateInstanceRequestSchema>, signal?: AbortSignal): Promise<Instance | undefined> {
    try {
      return (await coordinator.instances.createInstance(request, { signal })).instance;
    } catch (err) {
      if (signal?.aborted || callFailure(err) !== "no_answer") throw err;
      return (await coordinator.instances.createInstance(request, { signal })).instance;
    }
  }

  /**
   * Replication status of an agent: from the coordinator replicating it, or, when it is not live (or its
   * coordinator is gone), from any replicated coordinator reading S3.
   */
  async replicationStatus(agentId: string, signal?: AbortSignal): Promise<ReplicationStatus> {
    let home: CoordinatorClients | undefined;
    try {
      home = await this.directory.locateAgent(agentId, signal);
    } catch (err) {
      const code = ConnectError.from(err).code;
      if (code !== Code.NotFound && code !== Code.Unavailable) throw err;
    }
    if (home) {
      try {
        return must((await home.replication.getReplicationStatus({ agentId }, { signal })).status, "replication status");
      } catch (err) {
        if (ConnectError.from(err).code !== Code.FailedPrecondition) throw err; // not replicated there: ask another
      }
    }
    const coordinator = await this.directory.place(signal, { replicated: true, read: true });
    return must((await coordinator.replication.getReplicationStatus({ agentId }, { signal })).status, "replication status");
  }

  /** Restores an agent as of a point in time into a new agent on a replicated coordinator (see ReplicationService.ForkAgent). */
  async forkAgent(req: MessageInitShape<typeof ForkAgentRequestSchema>, signal?: AbortSignal): Promise<ForkAgentResponse> {
    // The coordinator refuses a target id that exists (its directory, or the last-writer record in Valkey).
    const coordinator = await this.directory.place(signal, { replicated: true });
    const forked = await coordinator.replication.forkAgent(req, { signal });
    await this.directory.recordAgent(forked.agentId, coordinator.id);
    return forked;
  }

  async getInstance(instanceId: string, signal?: AbortSignal): Promise<Instance> {
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    return must((await coordinator.instances.getInstance({ instanceId }, { signal })).instance, "instance");
  }

  /**
   * The live instances of every coordinator in view. One that cannot be reached right now (dying, its
   * circuit open) is left out, as its instances cannot be reached either; only when none answers, or one
   * answers with a real error, does the listing fail.
   */
  async listInstances(filter: { agentId?: string; deploymentId?: string }, signal?: AbortSignal): Promise<Instance[]> {
    const coordinators = await this.directory.all(signal);
    const lists = await Promise.allSettled(coordinators.map((c) => c.instances.listInstances(filter, { signal })));
    const failures = lists.flatMap((l) => (l.status === "rejected" ? [ConnectError.from(l.reason)] : []));
    const real = failures.find((err) => !UNREACHABLE.has(err.code));
    if (real || (failures.length > 0 && failures.length === lists.length)) throw real ?? failures[0];
    return lists.flatMap((l) => (l.status === "fulfilled" ? l.value.instances : []));
  }

  async stopInstance(instanceId: string, graceMs: number, signal?: AbortSignal): Promise<Instance> {
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    return must((await coordinator.instances.stopInstance({ instanceId, graceMs }, { signal })).instance, "instance");
  }

  /**
   * `multitaskStrategy`: what happens while the agent is busy (UNSPECIFIED: the deployment's on_busy). `trace`: the
   * span of the client's request; the call to the coordinator is its child and carries it as `traceparent` metadata.
   */
  async sendMessage(instanceId: string, content: JsonObject, signal?: AbortSignal, multitaskStrategy = MultitaskStrategy.UNSPECIFIED, trace?: Span): Promise<SendMessageResponse> {
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    if (!trace?.context) return coordinator.sendMessage({ instanceId, content, multitaskStrategy }, signal ? { signal } : undefined);
    const attributes = this.tracer.records(trace.context)
      ? { "rpc.system": "grpc", "rpc.service": "podium.v1.InstanceService", "rpc.method": "SendMessage", "podium.instance_id": instanceId, "podium.coordinator_id": coordinator.id }
      : undefined;
    const call = this.tracer.startSpan("podium.v1.InstanceService/SendMessage", { parent: trace.context, kind: SpanKind.CLIENT, ...(attributes ? { attributes } : {}) });
    const headers = call.context ? traceHeaders(call.context) : {};
    return inRpcSpan(call, "client", () => coordinator.sendMessage({ instanceId, content, multitaskStrategy }, { headers, ...(signal ? { signal } : {}) }));
  }

  async cancelTurn(instanceId: string, turn: bigint, signal?: AbortSignal): Promise<{ cancelled: boolean; turn: bigint }> {
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    return coordinator.instances.cancelTurn({ instanceId, turn }, { signal });
  }

  async answerRequest(instanceId: string, requestId: string, value: Json, signal?: AbortSignal): Promise<void> {
    let protoValue: Value;
    try {
      protoValue = fromJson(ValueSchema, value);
    } catch (err) {
      throw new ConnectError(`answer value: ${errorMessage(err)}`, Code.InvalidArgument);
    }
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    await coordinator.instances.answerRequest({ instanceId, requestId, value: protoValue }, { signal });
  }

  /**
   * Replay-then-live updates of an instance, in the batches the coordinator sends. A broken
   * upstream stream is resumed from the last seq (no gap, no duplicate); when the coordinator is
   * gone for good the stream ends with a synthesized `terminated`, never a silent hang — also for a
   * client that has not received any event yet (`after.agentId` names the agent in that event).
   */
  async *streamUpdateBatches(instanceId: string, after: StreamStart, signal?: AbortSignal): AsyncGenerator<StreamUpdate[]> {
    let cursor: { afterSeq?: bigint; replayAll?: boolean } = after.replayAll ? { replayAll: true } : after.afterSeq !== undefined ? { afterSeq: after.afterSeq } : {};
    let last: StreamUpdate | undefined;
    const giveUpAt = () => Date.now() + this.resumeWindowMs;
    let deadline = giveUpAt();
    let coordinatorId = ""; // where the instance was last found: named in a synthesized `terminated`
    for (let attempt = 0; ; attempt++) {
      const lost = new AbortController();
      try {
        const coordinator = await this.directory.locateInstance(instanceId, signal);
        coordinatorId = coordinator.id;
        const streams = this.streamsByCoordinator.get(coordinatorId) ?? new Set<AbortController>();
        this.streamsByCoordinator.set(coordinatorId, streams);
        streams.add(lost);
        const combined = eitherSignal(signal, lost.signal);
        for await (const res of coordinator.instances.streamUpdates({ instanceId, ...cursor }, { signal: combined })) {
          if (res.updates.length === 0) continue;
          last = res.updates[res.updates.length - 1];
          deadline = giveUpAt();
          attempt = 0;
          yield res.updates;
        }
        return;
      } catch (err) {
        if (signal?.aborted) throw err;
        const code = ConnectError.from(err).code;
        // Once the instance was found live on a coordinator, "not found" means that coordinator is gone (or
        // forgot it): the stream ends like the instance did, whether or not an event was relayed yet.
        const located = coordinatorId !== "";
        const gone = lost.signal.reason instanceof CoordinatorLost || (code === Code.NotFound && located);
        if (gone || !(TRANSIENT.has(code) && Date.now() < deadline)) {
          if (!gone && !located) throw err;
          if (last?.messageType !== PlatformEvent.terminated)
            yield [
              terminatedUpdate(
                instanceId,
                { agentId: last?.agentId || after.agentId || "", seq: last?.seq ?? after.afterSeq ?? 0n },
                coordinatorId,
                gone ? "coordinator lost" : "coordinator unreachable",
              ),
            ];
          return;
        }
        if (last) cursor = { afterSeq: last.seq };
        // Woken early when the coordinator is declared lost meanwhile, so the next lookup can say so.
        await sleep(Math.min(1000, 100 * 2 ** attempt), eitherSignal(signal, lost.signal));
      } finally {
        const streams = this.streamsByCoordinator.get(coordinatorId);
        streams?.delete(lost);
        if (streams?.size === 0) this.streamsByCoordinator.delete(coordinatorId);
      }
    }
  }

  /** The same stream, one update at a time. */
  async *streamUpdates(instanceId: string, after: StreamStart, signal?: AbortSignal): AsyncGenerator<StreamUpdate> {
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

  async listSchedules(instanceId: string, signal?: AbortSignal): Promise<Schedule[]> {
    const coordinator = await this.directory.locateInstance(instanceId, signal);
    return (await coordinator.instances.listSchedules({ instanceId }, { signal })).schedules;
  }

  async getAgent(agentId: string, signal?: AbortSignal): Promise<GetAgentResponse> {
    const coordinator = await this.directory.locateAgent(agentId, signal);
    return coordinator.instances.getAgent({ agentId }, { signal });
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

/** How often a create of a named agent asks again while its coordinator is unreachable. */
const FAILOVER_POLL_MS = 250;

/** Coordinators a create of a new agent tries before it gives up (each at most once). */
const MAX_CREATE_ATTEMPTS = 4;

/** A create cut or turned away without an answer reads as UNAVAILABLE (503, retry), not as the transport's CANCELED / ABORTED / INTERNAL. */
function unreachableAsUnavailable(err: unknown, coordinatorId: string): unknown {
  const error = ConnectError.from(err);
  const failure = callFailure(error);
  if (failure === "answered" || error.code === Code.Unavailable) return err;
  const what = failure === "refused" ? "turned the create away" : "became unreachable while creating the instance";
  return new ConnectError(`coordinator ${coordinatorId} ${what} (${error.rawMessage}); retry`, Code.Unavailable, undefined, undefined, err);
}

/** After a coordinator's clean leave, how long its streams may still deliver their last events. */
const LEAVE_GRACE_MS = 2000;

/**
 * Codes of a broken connection to a coordinator, worth resuming from the last seq. A dropped HTTP/2
 * connection surfaces as Canceled (RST_STREAM CANCEL); our own aborts are told apart before this is used.
 */
const TRANSIENT: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.Unknown,
  Code.Internal,
  Code.Aborted,
  Code.Canceled,
  // The coordinator cut a stream that fell too far behind (the gateway stopped reading it for a slow client):
  // resuming replays the rest from messages.db.
  Code.ResourceExhausted,
]);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/** What clients get when an instance's coordinator is gone: the same event a crash produces, after `previous.seq`. */
function terminatedUpdate(instanceId: string, previous: { agentId: string; seq: bigint }, coordinatorId: string, reason: string): StreamUpdate {
  return create(StreamUpdateSchema, {
    instanceId,
    agentId: previous.agentId,
    // Not stored, so it takes no seq of its own: the last one delivered, which is also where to resume
    // (after_seq) on the agent's next instance. A seq above it would be the next stored event's, skipped.
    seq: previous.seq,
    timestamp: timestampNow(),
    messageType: PlatformEvent.terminated,
    content: { reason, coordinator_id: coordinatorId, exit_code: null, signal: null },
  });
}

class CoordinatorLost extends Error {
  constructor(readonly coordinatorId: string) {
    super(`coordinator ${coordinatorId} is gone`);
  }
}
