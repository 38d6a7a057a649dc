/**
 * Where gateways find coordinators. The static directory serves dev mode and fixed clusters; the
 * Valkey-backed directory (scale-out) implements the same interface.
 */
import { Code, ConnectError, createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { InstanceService, type SendMessageRequestSchema, type SendMessageResponse } from "../../gen/podium/v1/instance_service_pb.js";
import { FileService } from "../../gen/podium/v1/file_service_pb.js";
import { CoordinatorService } from "../../gen/podium/v1/coordinator_service_pb.js";
import { ReplicationService } from "../../gen/podium/v1/replication_service_pb.js";
import type { CoordinatorBreaker } from "./coordinator-breaker.js";

export type SendMessageInit = MessageInitShape<typeof SendMessageRequestSchema>;

/** InstanceService.SendMessage to one coordinator. */
export type SendMessageCall = (req: SendMessageInit, options?: Pick<CallOptions, "signal" | "headers">) => Promise<SendMessageResponse>;

export interface CoordinatorClients {
  readonly id: string;
  readonly instances: Client<typeof InstanceService>;
  /**
   * SendMessage as the gateway sends it: a unary call here, on the gateway's message stream over a
   * network (grpc-coordinator-connector.ts). Same outcomes either way.
   */
  readonly sendMessage: SendMessageCall;
  readonly files: Client<typeof FileService>;
  readonly control: Client<typeof CoordinatorService>;
  readonly replication: Client<typeof ReplicationService>;
  /** The circuit breaker every call goes through, when there is one: placement skips the coordinator while it is not closed. */
  readonly breaker?: CoordinatorBreaker;
  /** The same coordinator past its breaker: placement uses it when every coordinator's circuit is open (better to try than to refuse). */
  readonly unguarded?: CoordinatorClients;
  /** Closes the connection (after `graceMs` for calls in flight) and the breaker, when the clients own them. */
  close?(graceMs?: number): void | Promise<void>;
}

/** False while the coordinator's circuit breaker is open or half-open. */
export function isAnswering(clients: CoordinatorClients): boolean {
  return clients.breaker?.available ?? true;
}

export interface PlacementRequirements {
  /** Only coordinators that replicate their agents to S3 (docs/replication.md). */
  replicated?: boolean;
  /** Any such coordinator for a read (e.g. replication status from S3): not counted as a placement. */
  read?: boolean;
  /** Coordinators not to choose (a create retried after they failed or refused it). */
  exclude?: ReadonlySet<string>;
}

export interface CoordinatorDirectory {
  /** Chooses the coordinator for a new instance (never a full or draining one). */
  place(signal?: AbortSignal, requirements?: PlacementRequirements): Promise<CoordinatorClients>;
  /**
   * Where an instance of `agentId` should start: its home coordinator (where its data is) when that is
   * alive; a new placement for a new agent; for a replicated agent whose home is gone, any replicated
   * coordinator (it restores the agent from S3). UNAVAILABLE when the agent's data cannot be reached.
   */
  placeAgent(agentId: string, signal?: AbortSignal): Promise<CoordinatorClients>;
  /** The coordinator hosting an instance; NOT_FOUND when no coordinator is known to host it. */
  locateInstance(instanceId: string, signal?: AbortSignal): Promise<CoordinatorClients>;
  /** The coordinator that holds an agent's data (its live instance, or where it last ran). */
  locateAgent(agentId: string, signal?: AbortSignal): Promise<CoordinatorClients>;
  recordInstance(record: { instanceId: string; agentId: string; coordinatorId: string }): Promise<void>;
  /** Records where an agent's data is (a fork made there). */
  recordAgent(agentId: string, coordinatorId: string): Promise<void>;
  all(signal?: AbortSignal): Promise<CoordinatorClients[]>;
  close(): Promise<void>;
}

export function coordinatorClients(id: string, transport: Transport): CoordinatorClients {
  const instances = createClient(InstanceService, transport);
  return {
    id,
    instances,
    sendMessage: (req, options) => instances.sendMessage(req, options),
    files: createClient(FileService, transport),
    control: createClient(CoordinatorService, transport),
    replication: createClient(ReplicationService, transport),
  };
}

/** A fixed set of coordinators; instance locations are remembered in memory. */
export class StaticCoordinatorDirectory implements CoordinatorDirectory {
  private readonly byId = new Map<string, CoordinatorClients>();
  private readonly instances = new Map<string, string>();
  private readonly agents = new Map<string, string>();
  private next = 0;

  constructor(coordinators: CoordinatorClients[]) {
    if (coordinators.length === 0) throw new Error("StaticCoordinatorDirectory needs at least one coordinator");
    for (const c of coordinators) this.byId.set(c.id, c);
  }

  private only(): CoordinatorClients | undefined {
    return this.byId.size === 1 ? this.byId.values().next().value : undefined;
  }

  async place(signal?: AbortSignal, requirements: PlacementRequirements = {}): Promise<CoordinatorClients> {
    const allowed = [...this.byId.values()].filter((c) => !requirements.exclude?.has(c.id));
    if (allowed.length === 0) throw new ConnectError("no coordinator can take a new instance right now", Code.Unavailable);
    // Every circuit open: try them anyway rather than refuse.
    const answering = allowed.filter(isAnswering);
    const candidates = answering.length > 0 ? answering : allowed.map((c) => c.unguarded ?? c);
    if (this.byId.size === 1) return candidates[0] as CoordinatorClients;
    const infos = await Promise.all(
      candidates.map(async (c) => {
        try {
          const { info } = await c.control.getCoordinatorInfo({}, { signal, timeoutMs: 2000 });
          const usable = info && !info.draining && info.instances < info.capacity && (!requirements.replicated || info.replicated);
          return usable ? { c, load: info.instances / Math.max(1, info.capacity) } : undefined;
        } catch {
          return undefined;
        }
      }),
    );
    const usable = infos.filter((x): x is { c: CoordinatorClients; load: number } => x !== undefined);
    if (usable.length === 0) throw new ConnectError("no coordinator has capacity", Code.Unavailable);
    const least = Math.min(...usable.map((u) => u.load));
    const best = usable.filter((u) => u.load === least);
    return (best[this.next++ % best.length] as { c: CoordinatorClients }).c;
  }

  async locateInstance(instanceId: string): Promise<CoordinatorClients> {
    const id = this.instances.get(instanceId);
    const found = id ? this.byId.get(id) : this.only();
    if (!found) throw new ConnectError(`unknown instance ${instanceId}`, Code.NotFound);
    return found;
  }

  async locateAgent(agentId: string): Promise<CoordinatorClients> {
    const id = this.agents.get(agentId);
    const found = id ? this.byId.get(id) : this.only();
    if (!found) throw new ConnectError(`unknown agent ${agentId}`, Code.NotFound);
    return found;
  }

  async placeAgent(agentId: string, signal?: AbortSignal): Promise<CoordinatorClients> {
    const id = this.agents.get(agentId);
    const home = id ? this.byId.get(id) : undefined;
    return home ?? this.place(signal);
  }

  async recordInstance(record: { instanceId: string; agentId: string; coordinatorId: string }): Promise<void> {
    this.instances.set(record.instanceId, record.coordinatorId);
    this.agents.set(record.agentId, record.coordinatorId);
  }

  async recordAgent(agentId: string, coordinatorId: string): Promise<void> {
    this.agents.set(agentId, coordinatorId);
  }

  async all(): Promise<CoordinatorClients[]> {
    return [...this.byId.values()];
  }

  /** Closes the clients that can be closed (connections, breakers). */
  async close(): Promise<void> {
    for (const clients of this.byId.values()) await clients.close?.();
  }
}
