/**
 * Creates through a real gateway (REST and Connect on port 0) in front of two fake coordinators
 * (createRouterTransport): retried elsewhere when the first could not have started anything, retried
 * on the same coordinator with the same request id when it may have (never two agents), and overload
 * answered 429 / 503 with Retry-After.
 */
import { describe, it, expect, beforeAll, afterAll, beforeEach } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { CoordinatorService } from "../../gen/podium/v1/coordinator_service_pb.js";
import { InstanceSchema, InstanceStatus, type Instance } from "../../gen/podium/v1/instance_pb.js";
import { coordinatorClients, StaticCoordinatorDirectory } from "../../services/gateway/coordinator-directory.js";
import { createGateway, type Gateway } from "../../services/gateway/create-gateway.js";
import { CreateRequests } from "../../services/coordinator/create-requests.js";
import { CoordinatorBreaker } from "../../services/gateway/coordinator-breaker.js";
import { LocalRegistry } from "../../services/registry/local-registry.js";
import { silentLogger } from "../../services/shared/logger.js";

type Behaviour =
  | "ok"
  | "refuse" // connection refused: the call never reaches the coordinator
  | "reset-after" // the coordinator creates the instance, then the connection resets before the answer
  | "busy" // RESOURCE_EXHAUSTED with retry-after 7
  | "draining" // UNAVAILABLE (answered)
  | "not-found";

/** A coordinator stand-in: CreateInstance de-duplicated by request id like the real handler. */
class FakeCoordinator {
  behaviour: Behaviour = "ok";
  /** Agents started (one per create that ran). */
  readonly started: Instance[] = [];
  /** request_id of every CreateInstance call that reached it. */
  readonly requestIds: string[] = [];
  private resetOnce = false;
  private readonly creates = new CreateRequests<Instance>({ discard: () => undefined });

  constructor(
    readonly id: string,
    private readonly load: number,
  ) {}

  clients() {
    const fake = this;
    const transport = createRouterTransport(
      (router) => {
        router.service(CoordinatorService, {
          async getCoordinatorInfo() {
            return { info: { coordinatorId: fake.id, capacity: 10, instances: fake.load } };
          },
        });
        router.service(InstanceService, {
          async createInstance(req, ctx) {
            fake.requestIds.push(req.requestId);
            if (fake.behaviour === "busy") throw new ConnectError(`${fake.id} admission queue is full`, Code.ResourceExhausted, { "retry-after": "7" });
            if (fake.behaviour === "draining") throw new ConnectError(`coordinator ${fake.id} is draining`, Code.Unavailable);
            if (fake.behaviour === "not-found") throw new ConnectError("unknown deployment nope:1.0.0", Code.NotFound);
            const instance = await fake.creates.run(req.requestId, ctx.signal, async () => {
              const started = create(InstanceSchema, { instanceId: `inst-${fake.id}-${fake.started.length + 1}`, agentId: "agent-x", status: InstanceStatus.READY });
              fake.started.push(started);
              return started;
            });
            return { instance };
          },
          async listInstances() {
            if (fake.behaviour === "not-found") throw new ConnectError("listing is broken", Code.Internal);
            return { instances: fake.started };
          },
        });
      },
      { transport: { interceptors: [fake.network()] } },
    );
    return coordinatorClients(this.id, transport);
  }

  /** What the network does to a call before and after the coordinator handles it. */
  private network(): Interceptor {
    return (next) => async (req) => {
      if (this.behaviour === "refuse") {
        const cause = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED", syscall: "connect" });
        throw new ConnectError(cause.message, Code.Unavailable, undefined, undefined, cause);
      }
      const res = await next(req);
      if (req.method.name !== "CreateInstance") return res;
      if (this.behaviour === "reset-after" && !this.resetOnce) {
        this.resetOnce = true;
        const cause = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET", syscall: "read" });
        throw new ConnectError(cause.message, Code.Aborted, undefined, undefined, cause);
      }
      return res;
    };
  }
}

describe("creates: failover, idempotent retries, overload answers", () => {
  let a: FakeCoordinator;
  let b: FakeCoordinator;
  let gateway: Gateway;
  let base: string;
  let dir: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-failover-"));
    a = new FakeCoordinator("coord-a", 0); // less loaded: placed first
    b = new FakeCoordinator("coord-b", 5);
    gateway = createGateway({
      directory: new StaticCoordinatorDirectory([a.clients(), b.clients()]),
      registry: new LocalRegistry({ dir }),
      apiKeys: [],
      logger: silentLogger,
    });
    base = `http://127.0.0.1:${await gateway.listen(0)}`;
  });

  afterAll(async () => {
    await gateway.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    for (const fake of [a, b]) {
      fake.behaviour = "ok";
      fake.started.length = 0;
      fake.requestIds.length = 0;
    }
  });

  const post = async (): Promise<{ status: number; retryAfter: string | null; body: Record<string, unknown> }> => {
    const res = await fetch(`${base}/api/v1/instances`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deployment_id: "echo:1.0.0" }) });
    return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as Record<string, unknown> };
  };

  it("connection refused: the create goes to the other coordinator, with a request id", async () => {
    a.behaviour = "refuse";
    const res = await post();
    expect(res).toMatchObject({ status: 201, body: { instance_id: "inst-coord-b-1" } });
    expect(a.started).toEqual([]);
    expect(b.requestIds).toEqual([expect.stringMatching(/^create-[0-9a-f-]{36}$/)]);
  });

  it("reset after the coordinator created it: retried there with the same request id, which answers the same instance (one agent)", async () => {
    a.behaviour = "reset-after";
    const res = await post();
    expect(res).toMatchObject({ status: 201, body: { instance_id: "inst-coord-a-1" } });
    expect(a.started).toHaveLength(1);
    expect(a.requestIds).toHaveLength(2);
    expect(a.requestIds[1]).toBe(a.requestIds[0]);
    expect(b.requestIds).toEqual([]);
  });

  it("a coordinator that answers it is full or draining is passed over for another", async () => {
    a.behaviour = "busy";
    expect(await post()).toMatchObject({ status: 201, body: { instance_id: "inst-coord-b-1" } });
    a.behaviour = "draining";
    expect(await post()).toMatchObject({ status: 201, body: { instance_id: "inst-coord-b-2" } });
  });

  it("every coordinator overloaded: 429 with the coordinator's Retry-After on REST, the same code and metadata on Connect", async () => {
    a.behaviour = "busy";
    b.behaviour = "busy";
    const res = await post();
    expect(res).toMatchObject({ status: 429, retryAfter: "7", body: { error: { code: "resource_exhausted", message: expect.stringMatching(/admission queue is full/) } } });
    const client = createClient(InstanceService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" }));
    const error = await client.createInstance({ deploymentId: "echo:1.0.0" }).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect(error?.code).toBe(Code.ResourceExhausted);
    expect(error?.metadata.get("retry-after")).toBe("7");
  });

  it("unavailable everywhere (draining, refused): 503 with Retry-After 1 by default", async () => {
    a.behaviour = "draining";
    b.behaviour = "refuse";
    const res = await post();
    expect(res).toMatchObject({ status: 503, retryAfter: "1", body: { error: { code: "unavailable" } } });
    expect([...a.started, ...b.started]).toEqual([]);
  });

  it("listing instances: a coordinator that cannot be reached is left out; none reachable is 503; a real error fails the listing", async () => {
    await post();
    a.behaviour = "refuse"; // dying: connection refused
    const list = async () => {
      const res = await fetch(`${base}/api/v1/instances`);
      return { status: res.status, body: (await res.json()) as { instances?: { instance_id: string }[] } };
    };
    expect(await list()).toMatchObject({ status: 200, body: { instances: [] } });
    a.behaviour = "ok";
    b.behaviour = "refuse";
    expect(await list()).toMatchObject({ status: 200, body: { instances: [{ instance_id: "inst-coord-a-1" }] } });
    a.behaviour = "refuse";
    expect((await list()).status).toBe(503);
    a.behaviour = "not-found"; // answers, with an error that is not about reaching it
    expect((await list()).status).toBe(500);
  });

  it("an answer that is not about load (NOT_FOUND) is not retried", async () => {
    a.behaviour = "not-found";
    expect(await post()).toMatchObject({ status: 404, retryAfter: null, body: { error: { code: "not_found" } } });
    expect(b.requestIds).toEqual([]);
  });
});

/** A breaker that three refused calls have opened (it stays open: its probe never answers). */
async function openBreaker(coordinatorId: string): Promise<CoordinatorBreaker> {
  const breaker = new CoordinatorBreaker({ coordinatorId, probe: () => new Promise<never>(() => undefined) }, { cooldownMs: 60_000 });
  const refused = breaker.interceptor(async () => {
    const cause = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED", syscall: "connect" });
    throw new ConnectError(cause.message, Code.Unavailable, undefined, undefined, cause);
  });
  const request = { stream: false, signal: new AbortController().signal } as unknown as Parameters<typeof refused>[0];
  for (let i = 0; i < 3; i++) await refused(request).catch(() => undefined);
  expect(breaker.state).toBe("open");
  return breaker;
}

describe("placement and open circuits", () => {
  const dirs: string[] = [];
  const breakers: CoordinatorBreaker[] = [];
  const gateways: Gateway[] = [];

  afterAll(async () => {
    for (const gateway of gateways) await gateway.close();
    for (const breaker of breakers) breaker.close();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function gatewayOver(coordinators: ReturnType<FakeCoordinator["clients"]>[]): Promise<string> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-circuit-"));
    dirs.push(dir);
    const gateway = createGateway({ directory: new StaticCoordinatorDirectory(coordinators), registry: new LocalRegistry({ dir }), apiKeys: [], logger: silentLogger });
    gateways.push(gateway);
    return `http://127.0.0.1:${await gateway.listen(0)}`;
  }

  const createVia = async (base: string): Promise<Record<string, unknown>> => {
    const res = await fetch(`${base}/api/v1/instances`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deployment_id: "echo:1.0.0" }) });
    return { http: res.status, ...((await res.json()) as Record<string, unknown>) };
  };

  it("a coordinator whose circuit is open is skipped (even when it is the least loaded)", async () => {
    const open = await openBreaker("coord-a");
    breakers.push(open);
    const a = new FakeCoordinator("coord-a", 0);
    const b = new FakeCoordinator("coord-b", 5);
    const base = await gatewayOver([{ ...a.clients(), breaker: open, unguarded: a.clients() }, b.clients()]);
    expect(await createVia(base)).toMatchObject({ http: 201, instance_id: "inst-coord-b-1" });
    expect(a.requestIds).toEqual([]);
  });

  it("every circuit open: one is tried anyway, past its breaker, rather than refusing the client", async () => {
    const [openA, openB] = [await openBreaker("coord-a"), await openBreaker("coord-b")];
    breakers.push(openA, openB);
    const a = new FakeCoordinator("coord-a", 0);
    const b = new FakeCoordinator("coord-b", 5);
    const base = await gatewayOver([
      { ...a.clients(), breaker: openA, unguarded: a.clients() },
      { ...b.clients(), breaker: openB, unguarded: b.clients() },
    ]);
    expect(await createVia(base)).toMatchObject({ http: 201, instance_id: "inst-coord-a-1" });
  });
});
