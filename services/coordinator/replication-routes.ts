/**
 * The coordinator's ReplicationService: replication status of an agent (live here, released here, or
 * what its S3 marker says) and point-in-time forks. Without replication every call is
 * FAILED_PRECONDITION. docs/replication.md.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { AgentReplication, ReplicationStatus } from "../replication/agent-replication.js";
import type { InstanceManager } from "./instance-manager.js";
import { assertAgentId } from "../replication/stale-copies.js";
import { newId } from "../shared/ids.js";
import { ReplicationService, ReplicationStatusSchema, type ReplicationStatus as ReplicationStatusProto } from "../../gen/podium/v1/replication_service_pb.js";

export interface ReplicationRoutesDeps {
  manager: InstanceManager;
  replication: AgentReplication | undefined;
}

export function replicationStatusToProto(status: ReplicationStatus, coordinatorId: string): ReplicationStatusProto {
  return create(ReplicationStatusSchema, {
    agentId: status.agentId,
    state: status.state,
    lagMs: BigInt(Math.max(0, Math.round(status.lagMs))),
    generation: status.generation ?? "",
    position: status.position ?? "",
    ...(status.lastSyncAt !== undefined ? { lastSyncAt: timestampFromMs(status.lastSyncAt) } : {}),
    restarts: status.restarts,
    lastError: status.lastError ?? "",
    databases: status.databases.map((db) => ({
      name: db.db,
      lagMs: BigInt(Math.max(0, Math.round(db.lagMs))),
      generation: db.generation ?? "",
      position: db.position ?? "",
      ...(db.lastSyncAt !== undefined ? { lastSyncAt: timestampFromMs(db.lastSyncAt) } : {}),
    })),
    coordinatorId,
  });
}

export function replicationRoutes(deps: ReplicationRoutesDeps) {
  const { manager, replication } = deps;
  const required = (): AgentReplication => {
    if (!replication) throw replicationNotConfigured(manager.coordinatorId);
    return replication;
  };
  return (router: ConnectRouter) => {
    router.service(ReplicationService, {
      async getReplicationStatus(req, ctx) {
        if (!req.agentId) throw new ConnectError("agent_id is required", Code.InvalidArgument);
        const status = await required().describe(req.agentId, ctx.signal);
        if (!status) throw new ConnectError(`agent ${req.agentId} has no replica in S3`, Code.NotFound);
        return { status: replicationStatusToProto(status, manager.coordinatorId) };
      },
      async forkAgent(req, ctx) {
        if (!req.sourceAgentId) throw new ConnectError("source_agent_id is required", Code.InvalidArgument);
        required();
        const timestamp = req.timestamp ? timestampDate(req.timestamp) : undefined;
        if (timestamp && timestamp.getTime() > Date.now() + 1000) throw new ConnectError("timestamp is in the future", Code.InvalidArgument);
        assertAgentId(req.sourceAgentId, "source_agent_id");
        const targetAgentId = req.targetAgentId || newId("agent");
        assertAgentId(targetAgentId, "target_agent_id");
        if (targetAgentId === req.sourceAgentId) throw new ConnectError("target_agent_id must differ from source_agent_id", Code.InvalidArgument);
        const { agentId, ms } = await manager.forkAgent({ sourceAgentId: req.sourceAgentId, targetAgentId, ...(timestamp ? { timestamp } : {}) }, ctx.signal);
        return {
          agentId,
          sourceAgentId: req.sourceAgentId,
          ...(req.timestamp ? { timestamp: req.timestamp } : {}),
          restoreMs: BigInt(ms),
          coordinatorId: manager.coordinatorId,
        };
      },
    });
  };
}

export function replicationNotConfigured(coordinatorId: string): ConnectError {
  return new ConnectError(`replication is not configured on coordinator ${coordinatorId} (set --replicate-bucket / PODIUM_REPLICATION_BUCKET; docs/replication.md)`, Code.FailedPrecondition);
}
