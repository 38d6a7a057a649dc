/**
 * The circuit breaker toward a coordinator, through the production connector (gRPC over h2c) against
 * a real connect-node server on port 0 that can refuse connections (stopped), hang (a handler that
 * never answers) or answer errors. Short timings; assertions are on states and outcomes.
 */
import { describe, it, expect, afterEach } from "@jest/globals";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { CoordinatorService } from "../../gen/podium/v1/coordinator_service_pb.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { grpcCoordinatorConnector } from "../../services/cluster/grpc-coordinator-connector.js";
import type { ClosableCoordinatorClients } from "../../services/cluster/valkey-directory.js";
import { callFailure } from "../../services/gateway/call-failure.js";
import type { CircuitState } from "../../services/gateway/coordinator-breaker.js";

/** ok: answers; hang: never answers; not-found: answers NOT_FOUND; slow: ListInstances answers after 400 ms, probes at once. */
type Mode = "ok" | "hang" | "not-found" | "slow";

/** A coordinator stand-in: CoordinatorService.GetCoordinatorInfo and InstanceService.ListInstances, in `mode`. */
class FakeCoordinator {
  mode: Mode = "ok";
  private server: http2.Http2Server | undefined;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly hanging = new Set<() => void>();
  port = 0;

  private routes = (router: ConnectRouter): void => {
    const fake = this;
    const answer = async (): Promise<void> => {
      if (fake.mode === "hang") await new Promise<void>((resolve) => fake.hanging.add(resolve));
      if (fake.mode === "not-found") throw new ConnectError("no such thing", Code.NotFound);
    };
    router.service(CoordinatorService, {
      async getCoordinatorInfo() {
        await answer();
        return { info: { coordinatorId: "coord-f", capacity: 10 } };
      },
    });
    router.service(InstanceService, {
      async listInstances() {
        if (fake.mode === "slow") await new Promise((resolve) => setTimeout(resolve, 400));
        await answer();
        return { instances: [] };
      },
    });
  };

  async start(port = 0): Promise<void> {
    const server = http2.createServer(connectNodeAdapter({ routes: this.routes }));
    server.on("session", (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.once("close", () => this.sessions.delete(session));
    });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Stops listening and drops every connection: calls are refused until `start(port)` again. */
  async stop(): Promise<void> {
    for (const release of this.hanging) release();
    this.hanging.clear();
    for (const session of this.sessions) session.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }
}

const fast = { failureThreshold: 3, cooldownMs: 300, slowCallMs: 100, probeTimeoutMs: 200 };

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "ok";
  } catch (error) {
    const e = ConnectError.from(error);
    return `${Code[e.code]}:${callFailure(e)}`;
  }
}

describe("CoordinatorBreaker (through grpcCoordinatorConnector)", () => {
  let fake: FakeCoordinator;
  let clients: ClosableCoordinatorClients;
  let states: CircuitState[];

  const open = async (mode: Mode = "ok"): Promise<void> => {
    fake = new FakeCoordinator();
    fake.mode = mode;
    await fake.start();
    states = [];
    clients = grpcCoordinatorConnector({ breaker: fast, onCircuitChange: (_id, state) => states.push(state) })({
      coordinatorId: "coord-f",
      address: `http://127.0.0.1:${fake.port}`,
    });
  };

  afterEach(async () => {
    await clients?.close?.();
    await fake?.stop();
  });

  it("opens after 3 connection failures in a row, fails fast while open, and closes when a half-open probe is answered", async () => {
    await open();
    expect(await outcome(clients.instances.listInstances({}))).toBe("ok");
    const port = fake.port;
    await fake.stop();
    const failed: string[] = [];
    while (clients.breaker?.state === "closed" && failed.length < 10) failed.push(await outcome(clients.instances.listInstances({})));
    // The first may still meet the closing server (a refused stream, which is an answer and does not count);
    // then connections are refused: never sent, and three in a row open the breaker.
    expect(clients.breaker?.state).toBe("open");
    expect(failed.slice(-3).map((r) => r.split(":")[1])).toEqual(["not_sent", "not_sent", "not_sent"]);
    expect(failed.length).toBeLessThanOrEqual(4);
    // Open: refused by the gateway itself, marked as never sent (a create goes elsewhere).
    expect(await outcome(clients.instances.listInstances({}))).toBe("Unavailable:not_sent");
    // Half-open probes fail while it is down (it stays open), then one is answered once it is back.
    await until(() => states.includes("half_open"), "a half-open probe");
    expect(clients.breaker?.available).toBe(false);
    await fake.start(port);
    await until(() => clients.breaker?.state === "closed", "the breaker to close");
    expect(await outcome(clients.instances.listInstances({}))).toBe("ok");
    expect(states[0]).toBe("open");
    expect(states[states.length - 1]).toBe("closed");
  });

  it("opens when a call hangs and a probe gets no answer; the waiting call is cut once a half-open probe fails too", async () => {
    await open("hang");
    const waiting = outcome(clients.instances.listInstances({}));
    await until(() => clients.breaker?.state !== "closed", "the breaker to open on a hang");
    expect(await outcome(clients.instances.listInstances({}))).toBe("Unavailable:not_sent");
    // Still silent at the half-open probe: the call that waited all along is cut (it may have been received).
    expect(await waiting).toBe("Unavailable:no_answer");
    fake.mode = "ok";
    await until(() => clients.breaker?.state === "closed", "the breaker to close when the coordinator answers again");
    expect(await outcome(clients.instances.listInstances({}))).toBe("ok");
  });

  it("does not count answers: errors the coordinator sends and the caller's own cancellations leave it closed", async () => {
    await open("not-found");
    for (let i = 0; i < 5; i++) expect(await outcome(clients.instances.listInstances({}))).toBe("NotFound:answered");
    fake.mode = "hang";
    for (let i = 0; i < 5; i++) {
      const controller = new AbortController();
      const call = outcome(clients.instances.listInstances({}, { signal: controller.signal }));
      controller.abort();
      expect(await call).toMatch(/^Canceled:/);
    }
    expect(clients.breaker?.state).toBe("closed");
    expect(states).toEqual([]);
  });

  it("a slow coordinator that answers its probes stays closed", async () => {
    await open("slow");
    // Each call takes 4x slowCallMs; the probes it triggers are answered at once: never opened.
    for (let i = 0; i < 3; i++) expect(await outcome(clients.instances.listInstances({}))).toBe("ok");
    expect(states).toEqual([]);
  });
});
