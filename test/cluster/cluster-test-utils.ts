/** Helpers for the cluster tests: tiny in-test coordinators (Connect router transports), a log capture, polling. */
import type { ConnectRouter } from "@connectrpc/connect";
import { createRouterTransport } from "@connectrpc/connect";
import { coordinatorClients } from "../../services/gateway/coordinator-directory.js";
import type { CoordinatorLoad } from "../../services/cluster/cluster-keys.js";
import type { ClosableCoordinatorClients, CoordinatorAddress } from "../../services/cluster/valkey-directory.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { CoordinatorService } from "../../gen/podium/v1/coordinator_service_pb.js";
import { createLogger, type Logger } from "../../services/shared/logger.js";
import { newId } from "../../services/shared/ids.js";

/** A stand-in coordinator: counts the instances created on it and reports that load. */
export interface FakeCoordinator {
  id: string;
  instances: number;
  capacity: number;
  draining: boolean;
  created: string[];
  load(): CoordinatorLoad;
  routes(router: ConnectRouter): void;
}

export function fakeCoordinator(id: string, capacity = 1000): FakeCoordinator {
  const fake: FakeCoordinator = {
    id,
    instances: 0,
    capacity,
    draining: false,
    created: [],
    load: () => ({ instances: fake.instances, capacity: fake.capacity, cpuLoad: 0, memoryBytes: 1024, draining: fake.draining }),
    routes(router) {
      router.service(InstanceService, {
        async createInstance(req) {
          fake.instances++;
          const instanceId = newId("inst");
          fake.created.push(instanceId);
          return { instance: { instanceId, agentId: req.agentId || newId("agent"), deploymentId: req.deploymentId, coordinatorId: id } };
        },
      });
      router.service(CoordinatorService, {
        async getCoordinatorInfo() {
          return { info: { coordinatorId: id, instances: fake.instances, capacity: fake.capacity, draining: fake.draining } };
        },
      });
    },
  };
  return fake;
}

/** `connect` for ValkeyCoordinatorDirectory over in-process router transports; records connects and closes. */
export function routerConnector(fakes: Map<string, FakeCoordinator>) {
  const connects: string[] = [];
  const closes: string[] = [];
  const connect = (info: CoordinatorAddress): ClosableCoordinatorClients => {
    const fake = fakes.get(info.coordinatorId);
    if (!fake) throw new Error(`no fake coordinator ${info.coordinatorId}`);
    connects.push(info.coordinatorId);
    return {
      ...coordinatorClients(
        info.coordinatorId,
        createRouterTransport((router) => fake.routes(router)),
      ),
      close: () => void closes.push(info.coordinatorId),
    };
  };
  return { connect, connects, closes };
}

export interface CapturedLog {
  logger: Logger;
  lines: { level: string; msg: string; [key: string]: unknown }[];
  count(pattern: RegExp): number;
}

export function captureLogger(): CapturedLog {
  const lines: CapturedLog["lines"] = [];
  const logger = createLogger({ level: "debug", write: (line) => void lines.push(JSON.parse(line) as CapturedLog["lines"][number]) });
  return { logger, lines, count: (pattern) => lines.filter((l) => pattern.test(l.msg)).length };
}

/** Polls until `condition` holds; returns the elapsed ms. */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, intervalMs = 10): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await condition()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
