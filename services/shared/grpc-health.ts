/**
 * The standard gRPC health service (grpc.health.v1.Health) for connect-node, which ships none.
 *
 * HealthStatusRegistry holds the serving status of the server as a whole (service "") and of each
 * named service; healthRoutes(registry) mounts Check / List / Watch on a ConnectRouter, so the same
 * registry answers `grpc_health_probe`, Kubernetes gRPC probes, grpcurl and `buf curl`.
 *
 *   const health = new HealthStatusRegistry({ "podium.v1.InstanceService": SERVING });
 *   connectNodeAdapter({ routes: (r) => { healthRoutes(health)(r); instanceRoutes(deps)(r); } });
 *   // on SIGTERM: health.shutdown() -> everything NOT_SERVING, Watch streams end.
 *
 * Semantics follow grpc-go's health server: Check on an unknown service is NOT_FOUND; Watch sends
 * the current status at once, then every change (a slow watcher only sees the latest status, never
 * a backlog), SERVICE_UNKNOWN for a service not (yet) registered without ending the stream; after
 * shutdown() further setStatus calls are ignored.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus, HealthCheckResponseSchema, type HealthCheckResponse } from "../../gen/grpc/health/v1/health_pb.js";

export { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";

/** The name under which the server as a whole reports its health. */
export const OVERALL_HEALTH = "";

/** One Watch stream's mailbox: holds only the newest status not yet taken (coalescing). */
class StatusMailbox {
  private pending: ServingStatus | undefined;
  private ended = false;
  private wake: (() => void) | undefined;

  put(status: ServingStatus): void {
    if (this.ended) return;
    this.pending = status;
    this.wakeUp();
  }

  /** Ends the stream after the pending status (if any) has been taken; `discard` drops it. */
  end(discard = false): void {
    if (discard) this.pending = undefined;
    this.ended = true;
    this.wakeUp();
  }

  /** The next status, or undefined once ended and drained. */
  async take(): Promise<ServingStatus | undefined> {
    while (this.pending === undefined && !this.ended) {
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const status = this.pending;
    this.pending = undefined;
    return status;
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

export class HealthStatusRegistry {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<StatusMailbox>>();
  private shutDown = false;

  /** `initial` may name any services; the overall status ("") defaults to SERVING. */
  constructor(initial: Record<string, ServingStatus> = {}) {
    this.statuses.set(OVERALL_HEALTH, ServingStatus.SERVING);
    for (const [service, status] of Object.entries(initial)) this.statuses.set(service, status);
  }

  /** Sets a service's status and tells its watchers. Ignored after shutdown(). */
  setStatus(service: string, status: ServingStatus): void {
    if (this.shutDown) return;
    this.statuses.set(service, status);
    for (const mailbox of this.watchers.get(service) ?? []) mailbox.put(status);
  }

  /** The registered status, or undefined for a service never registered. */
  getStatus(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Every registered service (including "") and its status. */
  list(): Map<string, ServingStatus> {
    return new Map(this.statuses);
  }

  get isShutDown(): boolean {
    return this.shutDown;
  }

  /** Open Watch streams (for metrics and tests). */
  get watcherCount(): number {
    let n = 0;
    for (const set of this.watchers.values()) n += set.size;
    return n;
  }

  /**
   * The service's status now, then each change, until `signal` aborts or shutdown(). An unknown
   * service yields SERVICE_UNKNOWN and keeps waiting for it to be registered. Consecutive equal
   * statuses are sent once.
   */
  async *watch(service: string, signal?: AbortSignal): AsyncGenerator<ServingStatus, void, undefined> {
    const mailbox = new StatusMailbox();
    mailbox.put(this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN);
    let set = this.watchers.get(service);
    if (set === undefined) set = new Set();
    if (this.shutDown) mailbox.end();
    else {
      this.watchers.set(service, set);
      set.add(mailbox);
    }
    const watchers = set;
    // Detach on abort right away: a consumer that stops pulling may never resume this generator.
    const detach = (): void => {
      signal?.removeEventListener("abort", onAbort);
      watchers.delete(mailbox);
      if (watchers.size === 0 && this.watchers.get(service) === watchers) this.watchers.delete(service);
    };
    const onAbort = (): void => {
      mailbox.end(true);
      detach();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted === true) onAbort();
    try {
      let last: ServingStatus | undefined;
      for (;;) {
        const status = await mailbox.take();
        if (status === undefined) return;
        if (status === last) continue;
        last = status;
        yield status;
      }
    } finally {
      detach();
    }
  }

  /** Sets every service (and "") to NOT_SERVING, tells watchers, then ends every Watch stream. */
  shutdown(): void {
    if (this.shutDown) return;
    for (const service of this.statuses.keys()) this.setStatus(service, ServingStatus.NOT_SERVING);
    this.shutDown = true;
    for (const set of this.watchers.values()) for (const mailbox of set) mailbox.end();
    this.watchers.clear();
  }

  /** Same as shutdown(); the owner calls it when the server stops. Idempotent. */
  close(): void {
    this.shutdown();
  }
}

function response(status: ServingStatus): HealthCheckResponse {
  return create(HealthCheckResponseSchema, { status });
}

/** Mounts grpc.health.v1.Health backed by `registry`. */
export function healthRoutes(registry: HealthStatusRegistry): (router: ConnectRouter) => void {
  return (router) =>
    router.service(Health, {
      check(request) {
        const status = registry.getStatus(request.service);
        if (status === undefined) {
          throw new ConnectError(`unknown service ${JSON.stringify(request.service)}`, Code.NotFound);
        }
        return response(status);
      },
      list() {
        const statuses: Record<string, HealthCheckResponse> = {};
        for (const [service, status] of registry.list()) statuses[service] = response(status);
        return { statuses };
      },
      async *watch(request, context) {
        for await (const status of registry.watch(request.service, context.signal)) yield response(status);
      },
    });
}
