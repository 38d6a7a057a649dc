/**
 * The coordinator's Connect services: InstanceService (what gateways forward to), CoordinatorService
 * (identity, load, drain) and FileService. Handlers are thin: they validate and call InstanceManager.
 */
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { toJson } from "@bufbuild/protobuf";
import type { Json } from "../shared/json.js";
import { signalToPass } from "../shared/in-process-context.js";
import { busyPolicyFromProto } from "../shared/busy-policy.js";
import type { InstanceManager } from "./instance-manager.js";
import type { AgentInstance } from "./agent-instance.js";
import { instanceToProto, logRowToProto, rowToMessageRecord, rowToStreamUpdate, scheduleToProto } from "./to-proto.js";
import type { MessageRow } from "./store/message-log.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import type { StreamUpdatesResponseSchema } from "../../gen/podium/v1/instance_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { CoordinatorService } from "../../gen/podium/v1/coordinator_service_pb.js";
import { AsyncQueue } from "../shared/async-queue.js";
import { fileRoutes, type FileAccess } from "./file-routes.js";
import { CreateRequests } from "./create-requests.js";
import { TurnTrace, tracedSend } from "./turn-trace.js";
import { NOOP_TRACER, type Tracer } from "../tracing/tracer.js";
import { rpcServerSpan } from "../tracing/rpc-trace.js";
import type { SpanBuffer } from "../tracing/span-buffer.js";
import { requireTraceId, spanToProto } from "../tracing/span-proto.js";
import { sendMessagesHandler, type SendOne } from "./message-stream.js";

export interface CoordinatorRoutesDeps {
  manager: InstanceManager;
  address: string;
  startedAt: number;
  version: string;
  files?: FileAccess;
  /** Spans of SendMessage and the turns it starts (NOOP_TRACER: none, the caller's trace context passes through). */
  tracer?: Tracer;
  /** The spans kept in memory that CoordinatorService.GetTrace reads (none: it answers no spans). */
  spans?: SpanBuffer;
  /** Aborted when the coordinator shuts down: message streams answer what they are handling and end. */
  closing?: AbortSignal;
}

const NEVER = new AbortController().signal;

function requireId(value: string, field: string): string {
  if (!value) throw new ConnectError(`${field} is required`, Code.InvalidArgument);
  return value;
}

function clampLimit(limit: number): number {
  return limit === 0 ? 100 : Math.min(limit, 1000);
}

const REPLAY_PAGE = 500;

/**
 * Replay-then-live stream of an instance's outbound updates, in batches of what is ready. Live
 * updates are captured first (into a queue) and the history up to that point is then read from
 * messages.db a page at a time, so a long history neither blocks the event loop nor overflows the
 * queue, and nothing is missed or repeated at the seam.
 */
export async function* streamInstanceUpdates(manager: InstanceManager, instanceId: string, afterSeq: number | "live", ctx: Pick<HandlerContext, "signal">): AsyncGenerator<MessageRow[]> {
  const instance = manager.require(instanceId);
  const queue = new AsyncQueue<MessageRow>(100_000, ctx.signal);
  const liveFrom = manager.withAgentStore(instance.agentId, (store) => store.messages.lastSeq());
  const unsubscribe = instance.live ? instance.subscribe({ onUpdate: (row) => queue.push(row), onEnd: () => queue.end() }) : () => undefined;
  if (!instance.live) queue.end();
  try {
    let cursor = afterSeq === "live" ? liveFrom : afterSeq;
    while (cursor < liveFrom && !ctx.signal.aborted) {
      const page = manager.withAgentStore(instance.agentId, (store) => store.messages.list(cursor, REPLAY_PAGE, "outbound")).filter((row) => row.seq <= liveFrom);
      if (page.length === 0) break;
      cursor = (page[page.length - 1] as MessageRow).seq;
      yield page;
    }
    for await (const batch of queue.batches(REPLAY_PAGE)) {
      const fresh = batch.filter((row) => row.seq > liveFrom);
      if (fresh.length > 0) yield fresh;
    }
  } finally {
    unsubscribe();
  }
}

export function coordinatorRoutes(deps: CoordinatorRoutesDeps) {
  const { manager } = deps;
  const tracer = deps.tracer ?? NOOP_TRACER;
  const toProto = (instance: AgentInstance) => instanceToProto(instance, manager.coordinatorId, instance.lastSeq);
  // A create whose callers all left before it finished is stopped: nobody was told about it.
  // (A resume that woke an existing instance is not: it stays, and hibernates again when idle.)
  const creates = new CreateRequests<AgentInstance>({ discard: (instance) => (manager.resumed(instance) ? Promise.resolve() : manager.stop(instance.instanceId, 0).then(() => undefined)) });
  const sendOne: SendOne = async (req, call, signal) => {
    const instanceId = requireId(req.instanceId, "instance_id");
    // The span of this call, and the turn's under it (when there is a context to carry: tracing on, or the caller's).
    const span = rpcServerSpan(tracer, call, instanceId);
    const trace = TurnTrace.start(tracer, span, instanceId);
    const sending = manager.send(instanceId, req.content ?? {}, busyPolicyFromProto(req.multitaskStrategy), signal, trace);
    const result = await (trace || span.recording ? tracedSend(span, trace, sending) : sending);
    return { seq: BigInt(result.seq), turn: BigInt(result.turn), queuePosition: result.queuePosition, cancelledTurns: result.cancelledTurns.map(BigInt) };
  };
  return (router: ConnectRouter) => {
    router.service(InstanceService, {
      async createInstance(req, ctx) {
        requireId(req.deploymentId, "deployment_id");
        // A gateway retrying a create (same request_id) joins the first attempt instead of starting a second agent.
        const started = performance.now();
        const instance = await creates.run(req.requestId, ctx.signal, (signal) =>
          manager.create({ deploymentId: req.deploymentId, agentId: req.agentId, secrets: req.secrets, environment: req.environment }, signal),
        );
        manager.counts.createSeconds.observe((performance.now() - started) / 1000);
        return { instance: toProto(instance) };
      },
      async getInstance(req) {
        return { instance: toProto(manager.require(requireId(req.instanceId, "instance_id"))) };
      },
      async listInstances(req) {
        return { instances: manager.list({ agentId: req.agentId, deploymentId: req.deploymentId }).map(toProto) };
      },
      async stopInstance(req) {
        return { instance: toProto(await manager.stop(requireId(req.instanceId, "instance_id"), req.graceMs || undefined)) };
      },
      async sendMessage(req, ctx) {
        return sendOne(req, ctx, signalToPass(ctx));
      },
      async cancelTurn(req) {
        const instance = manager.requireLive(requireId(req.instanceId, "instance_id"));
        const turn = instance.cancelTurn(req.turn > 0n ? Number(req.turn) : undefined);
        return { cancelled: turn !== undefined, turn: BigInt(turn ?? 0) };
      },
      async answerRequest(req) {
        const instance = manager.requireLive(requireId(req.instanceId, "instance_id"));
        instance.answer(requireId(req.requestId, "request_id"), req.value ? (toJson(ValueSchema, req.value) as Json) : null);
        return {};
      },
      async *streamUpdates(req, ctx): AsyncGenerator<MessageInitShape<typeof StreamUpdatesResponseSchema>> {
        const instance = manager.require(requireId(req.instanceId, "instance_id"));
        const afterSeq = req.replayAll ? 0 : req.afterSeq > 0n ? Number(req.afterSeq) : "live";
        for await (const rows of streamInstanceUpdates(manager, instance.instanceId, afterSeq, ctx)) {
          yield { updates: rows.map((row) => rowToStreamUpdate(row, instance.agentId)) };
        }
      },
      async getState(req, ctx) {
        const instance = manager.require(requireId(req.instanceId, "instance_id"));
        if (req.at !== undefined) {
          if (req.since !== undefined) throw new ConnectError("at and since cannot be used together", Code.InvalidArgument);
          const at = await manager.readAgentStore(instance.agentId, ctx.signal, (store) => store.state.stateAt(Number(req.at)));
          const patches = at.patch ? [{ version: BigInt(at.patch.version), patch: at.patch.ops, timestamp: timestampFromMs(at.patch.timestamp) }] : [];
          return { version: BigInt(at.version), state: at.state, patches };
        }
        return manager.readAgentStore(instance.agentId, ctx.signal, (store) => {
          if (req.since !== undefined) {
            const patches = store.state.patchesSince(Number(req.since));
            return {
              version: BigInt(store.state.version()),
              patches: patches.map((p) => ({ version: BigInt(p.version), patch: p.ops, timestamp: timestampFromMs(p.timestamp) })),
            };
          }
          const { version, state } = store.state.current();
          return { version: BigInt(version), state };
        });
      },
      async listMessages(req, ctx) {
        const instance = manager.require(requireId(req.instanceId, "instance_id"));
        return manager.readAgentStore(instance.agentId, ctx.signal, (store) => {
          const limit = clampLimit(req.limit);
          const rows = store.messages.list(Number(req.afterSeq), limit);
          const last = rows[rows.length - 1];
          return { messages: rows.map(rowToMessageRecord), nextAfterSeq: rows.length === limit && last ? BigInt(last.seq) : 0n };
        });
      },
      async listSchedules(req, ctx) {
        const instance = manager.requireLive(requireId(req.instanceId, "instance_id"));
        return { schedules: (await manager.readAgentStore(instance.agentId, ctx.signal, (store) => store.schedules.list())).map(scheduleToProto) };
      },
      async getAgent(req, ctx) {
        const agentId = requireId(req.agentId, "agent_id");
        return manager.readAgentStore(agentId, ctx.signal, (store) => ({
          agent: {
            agentId,
            instanceId: manager.list({ agentId })[0]?.instanceId ?? "",
            coordinatorId: manager.coordinatorId,
            lastSeq: BigInt(store.messages.lastSeq()),
            stateVersion: BigInt(store.state.version()),
          },
        }));
      },
      async listLogs(req, ctx) {
        const instance = manager.require(requireId(req.instanceId, "instance_id"));
        return manager.readAgentStore(instance.agentId, ctx.signal, (store) => {
          const limit = clampLimit(req.limit);
          const rows = store.logs.list(Number(req.after), limit);
          const last = rows[rows.length - 1];
          return { logs: rows.map(logRowToProto), nextAfter: rows.length === limit && last ? BigInt(last.id) : 0n };
        });
      },
    });
    router.service(CoordinatorService, {
      async getCoordinatorInfo() {
        const load = manager.load();
        return {
          info: {
            ...load,
            coordinatorId: manager.coordinatorId,
            address: deps.address,
            memoryBytes: BigInt(load.memoryBytes),
            replicated: load.replicated === true,
            startedAt: timestampFromMs(deps.startedAt),
            version: deps.version,
          },
        };
      },
      async drainCoordinator(req) {
        return { stopped: await manager.drain(req.deadlineMs || 30_000) };
      },
      async getTrace(req) {
        const traceId = requireTraceId(req.traceId);
        return { spans: (deps.spans?.trace(traceId) ?? []).map(spanToProto) };
      },
      sendMessages: sendMessagesHandler(sendOne, deps.closing ?? NEVER),
    });
    fileRoutes(manager, deps.files)(router);
  };
}
