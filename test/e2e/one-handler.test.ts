/**
 * One implementation of the public API: every RPC of the gateway's public services (enumerated from their
 * descriptors, so a new one is covered without touching this file) is reachable over Connect, gRPC and gRPC-Web,
 * and every REST route of an RPC (enumerated from the route table) too, all through the same shared handler:
 * the same bad input gets the same code and message on each, the ones the handler gives when called in-process.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { create, type DescMessage, type DescMethod, type DescMethodServerStreaming, type DescMethodUnary, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { gatewayHandlers, PUBLIC_SERVICES, type GatewayHandlers } from "../../services/gateway/gateway-handlers.js";
import { callStream, callUnary } from "../../services/gateway/edge-call.js";
import { restRoutes, type RestInput, type RestRoute } from "../../services/gateway/rest-routes.js";
import { codeName, httpStatusOf } from "../../services/shared/errors.js";
import type { JsonObject } from "../../services/shared/json.js";

/** What a call came to: "ok", or the error's code and message. */
type Outcome = "ok" | { code: Code; message: string };

let podium: DevFixture;
let handlers: GatewayHandlers;
let routes: RestRoute[];
const withKey: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${API_KEY}`);
  return next(req);
};
let transports: [string, Transport][];

beforeAll(async () => {
  podium = await startDevFixture();
  const core = podium.server.gateway.core;
  handlers = gatewayHandlers(core);
  routes = restRoutes({ core, handlers, health: async () => ({}), metrics: async () => "" });
  const baseUrl = podium.url;
  transports = [
    ["Connect", createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [withKey] })],
    ["gRPC", createGrpcTransport({ baseUrl, interceptors: [withKey] })],
    ["gRPC-Web", createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors: [withKey] })],
  ];
}, 60_000);
afterAll(async () => {
  await podium.close();
});

async function outcome(call: () => Promise<unknown>): Promise<Outcome> {
  try {
    await call();
    return "ok";
  } catch (err) {
    const error = ConnectError.from(err);
    return { code: error.code, message: error.rawMessage };
  }
}

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) break; // the first response is enough: the handler accepted the request
}

/** The shared handler called in-process: what every protocol must answer. */
function inProcess(method: DescMethod, req: MessageShape<DescMessage>): Promise<Outcome> {
  const signal = AbortSignal.timeout(10_000);
  if (method.methodKind === "unary") return outcome(() => callUnary(handlers, method as DescMethodUnary, req, { protocol: "test", signal }));
  if (method.methodKind === "server_streaming") return outcome(() => drain(callStream(handlers, method as DescMethodServerStreaming, req, { protocol: "test", signal })));
  throw new Error(`${method.name}: a ${method.methodKind} method needs a case here`);
}

/** The same request over Connect, gRPC or gRPC-Web. */
function overRpc(transport: Transport, method: DescMethod, req: MessageShape<DescMessage>): Promise<Outcome> {
  const client = createClient(method.parent, transport) as unknown as Record<string, (req: unknown, options: { signal: AbortSignal }) => unknown>;
  const call = client[method.localName] as (req: unknown, options: { signal: AbortSignal }) => unknown;
  const signal = AbortSignal.timeout(10_000);
  if (method.methodKind === "server_streaming") return outcome(() => drain(call(req, { signal }) as AsyncIterable<unknown>));
  return outcome(async () => call(req, { signal }));
}

const methods = PUBLIC_SERVICES.flatMap((service) => service.methods);

describe("every public RPC reaches the one handler on every protocol", () => {
  it.each(methods.map((m) => [`${m.parent.name}.${m.name}`, m] as const))(
    "%s: the empty request",
    async (_name, method) => {
      const req = create(method.input);
      const expected = await inProcess(method, req);
      for (const [protocol, transport] of transports) {
        expect({ protocol, outcome: await overRpc(transport, method, req) }).toEqual({ protocol, outcome: expected });
      }
    },
    60_000,
  );
});

/** A bad REST request for a route: over-long ids in the path, an empty JSON body, an empty upload. */
function badRestInput(route: RestRoute): { path: string; query: URLSearchParams; input: RestInput } {
  const params: string[] = [];
  const path = route.template.replace(/\{(\w+)\}/g, (_all, name: string) => {
    const value = name === "kind" ? "instances" : name === "path" ? "notes.txt" : name === "iteration" ? "1" : "x".repeat(300);
    params.push(value);
    return value;
  });
  const query = new URLSearchParams({ iteration: "1" });
  if (route.when && !route.when(query)) query.set("raw", "1");
  const input: RestInput = { params, query, json: async () => ({}), bytes: async () => Buffer.alloc(0) };
  return { path: `${path}?${query}`, query, input };
}

describe("every REST route of an RPC reaches the same handler", () => {
  it("routes only to the public services' RPCs, and to most of them", () => {
    const routed = new Set(routes.flatMap((r) => (r.rpc ? [r.rpc] : [])));
    for (const rpc of routed) expect(methods).toContain(rpc);
    expect(routed.size).toBeGreaterThanOrEqual(methods.length - 1); // all but StreamUpdates (a WebSocket)
  });

  it("gives the same code and message for the same bad input as Connect, gRPC and gRPC-Web", async () => {
    const rows = routes.filter((r) => r.rpc && r.request);
    expect(rows.length).toBeGreaterThan(20);
    let refused = 0;
    for (const route of rows) {
      const method = route.rpc as DescMethod;
      const { path, input } = badRestInput(route);
      const req = await (route.request as NonNullable<RestRoute["request"]>)(input);
      const expected = await inProcess(method, req);
      const name = `${route.method} ${route.template} (${method.name})`;
      const isPost = route.method === "POST";
      const body = isPost ? (method.name === "UploadDeployment" ? "" : {}) : undefined;
      const rest = await podium.api(route.method, path, body);
      if (expected === "ok") {
        expect({ name, status: rest.status < 300 }).toEqual({ name, status: true });
      } else {
        const error = rest.json.error as JsonObject;
        expect({ name, status: rest.status, code: error.code, message: error.message }).toEqual({
          name,
          status: httpStatusOf(expected.code),
          code: codeName(expected.code),
          message: expected.message,
        });
        expect({ name, code: expected.code }).toEqual({ name, code: Code.InvalidArgument });
        refused++;
      }
      for (const [protocol, transport] of transports) {
        expect({ name, protocol, outcome: await overRpc(transport, method, req) }).toEqual({ name, protocol, outcome: expected });
      }
    }
    expect(refused).toBe(rows.length - 2); // all but GET /api/v1/instances and GET /api/v1/deployments, which take no id
  }, 60_000);
});
