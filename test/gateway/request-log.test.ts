/**
 * Request ids and failure logs at the gateway's edges: REST responses (a real `podium dev`) and Connect
 * calls (the interceptor on a router) carry `x-request-id`, the caller's own when usable; a failure is
 * logged once with that id, its status and its causes, while the client's body stays the contract's.
 * Wrong methods on REST paths answer 405 with `Allow`.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { createLogger } from "../../services/shared/logger.js";
import { REQUEST_ID_HEADER, requestIdFrom, requestLogInterceptor } from "../../services/shared/request-log.js";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { connectErrorOf as failure } from "../helpers/connect-error-of.js";

const captured = () => {
  const lines: Record<string, unknown>[] = [];
  return { lines, logger: createLogger({ level: "debug", write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }) };
};

describe("request ids", () => {
  it("keeps a caller's short token and makes one otherwise", () => {
    expect(requestIdFrom("trace-42:a.b")).toBe("trace-42:a.b");
    expect(requestIdFrom(undefined)).toMatch(/^req_[A-Za-z0-9_-]{12}$/);
    expect(requestIdFrom("has spaces")).toMatch(/^req_/);
    expect(requestIdFrom("x".repeat(200))).toMatch(/^req_/);
  });
});

describe("Connect edge", () => {
  const { lines, logger } = captured();
  const transport = createRouterTransport(
    (router) =>
      router.service(InstanceService, {
        getInstance(req) {
          if (req.instanceId === "missing") throw new ConnectError("instance missing not found", Code.NotFound);
          throw new Error("disk /var/lib/podium/agents/x is on fire", { cause: new Error("EIO") });
        },
      }),
    { router: { interceptors: [requestLogInterceptor(logger)] } },
  );
  const client = createClient(InstanceService, transport);

  it("answers an unexpected failure as internal error, with the id, and logs its causes once", async () => {
    const err = await failure(client.getInstance({ instanceId: "boom" }, { headers: { [REQUEST_ID_HEADER]: "trace-1" } }));
    expect(err).toMatchObject({ code: Code.Internal, rawMessage: "internal error" });
    expect(err.metadata.get(REQUEST_ID_HEADER)).toBe("trace-1");
    const logged = lines.filter((l) => l.request_id === "trace-1");
    expect(logged).toEqual([
      expect.objectContaining({
        level: "error",
        msg: "request failed",
        request: "podium.v1.InstanceService/GetInstance",
        status: "Internal",
        error: "disk /var/lib/podium/agents/x is on fire <- caused by: EIO",
      }),
    ]);
  });

  it("logs a client's mistake at debug only", async () => {
    const err = await failure(client.getInstance({ instanceId: "missing" }));
    expect(err.code).toBe(Code.NotFound);
    const id = err.metadata.get(REQUEST_ID_HEADER);
    expect(id).toMatch(/^req_/);
    expect(lines.filter((l) => l.request_id === id).map((l) => l.level)).toEqual(["debug"]);
  });
});

describe("REST edge (podium dev)", () => {
  let podium: DevFixture;
  beforeAll(async () => {
    podium = await startDevFixture();
  }, 60_000);
  afterAll(async () => {
    await podium?.close();
  });

  it("puts x-request-id on every response, the caller's own when it sent one, and leaves error bodies as they were", async () => {
    const ok = await fetch(`${podium.url}/api/v1/instances`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(ok.headers.get(REQUEST_ID_HEADER)).toMatch(/^req_/);
    const missing = await fetch(`${podium.url}/api/v1/instances/inst-nope`, { headers: { authorization: `Bearer ${API_KEY}`, [REQUEST_ID_HEADER]: "client-7" } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get(REQUEST_ID_HEADER)).toBe("client-7");
    expect(await missing.json()).toEqual({ error: { code: "not_found", message: expect.any(String) } });
  });

  it("answers a wrong method with 405 and the methods the path takes", async () => {
    const res = await fetch(`${podium.url}/api/v1/instances`, { method: "PUT", headers: { authorization: `Bearer ${API_KEY}` } });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")?.split(", ").sort()).toEqual(["GET", "POST"]);
    expect(await res.json()).toEqual({ error: { code: "unimplemented", message: expect.stringContaining("PUT is not allowed on /api/v1/instances") } });
  });
});
