/** Durability of agents: Litestream replication to S3, restore, point-in-time forks, single-writer leases. */
export { createAgentReplication } from "./agent-replication.js";
export type { AgentReplication, AgentReplicationOptions, ForkOptions, ReplicationStatus } from "./agent-replication.js";
export { restoreAgent } from "./agent-restore.js";
export type { RestoreAgentOptions, RestoreAgentResult, RestoredDatabase } from "./agent-restore.js";
export { AgentLease, leaseKey, DEFAULT_LEASE_TTL_MS } from "./agent-lease.js";
export type { AgentLeaseOptions, AcquireOptions } from "./agent-lease.js";
export { LitestreamSupervisor } from "./litestream-supervisor.js";
export type { LitestreamSupervisorOptions, SupervisedDatabase, SupervisorStatus } from "./litestream-supervisor.js";
export { AGENT_DATABASES, compileS3Settings, compileTimings, replicaPath, replicaUrl } from "./replication-options.js";
export type { ReplicationS3Settings, ReplicationTimings } from "./replication-options.js";
export type { DatabaseReplicationStatus } from "./replication-tracker.js";
export { moveAsideStaleCopy, removeStaleCopies, isStaleCopyName } from "./stale-copies.js";
