/**
 * CORS on the gateway's one port, against a real `podium dev`: origin patterns, preflights for REST and
 * Connect (the headers connect-es sends), the headers on actual responses, a refused origin, and no
 * CORS headers for requests without an Origin. The same from a real browser: test/browser/cors.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { compileCorsOrigins, corsOriginsFrom } from "../../services/gateway/cors-policy.js";

describe("CORS origin patterns", () => {
  it("matches exact origins, any port, any subdomain and *", () => {
    const allowed = compileCorsOrigins(["https://app.example.com", "http://localhost:*", "https://*.example.org", "http://[::1]:3000"]);
    expect(allowed("https://app.example.com")).toBe(true);
    expect(allowed("https://APP.example.com")).toBe(true);
    expect(allowed("http://app.example.com")).toBe(false); // scheme
    expect(allowed("https://app.example.com:8443")).toBe(false); // port
    expect(allowed("https://evil.com")).toBe(false);
    expect(allowed("http://localhost:5173")).toBe(true);
    expect(allowed("http://localhost")).toBe(true);
    expect(allowed("http://localhost.evil.com:80")).toBe(false);
    expect(allowed("https://a.b.example.org")).toBe(true);
    expect(allowed("https://example.org")).toBe(false);
    expect(allowed("https://evilexample.org")).toBe(false);
    expect(allowed("http://[::1]:3000")).toBe(true);
    expect(allowed("null")).toBe(false);
    expect(compileCorsOrigins(["*"])("https://anything.test")).toBe(true);
    expect(compileCorsOrigins([])("http://localhost")).toBe(false);
  });

  it("refuses what is not an origin, naming it", () => {
    expect(() => compileCorsOrigins(["example.com"])).toThrow(/"example.com" is not an origin/);
    expect(() => compileCorsOrigins(["https://example.com/app"])).toThrow(/is not an origin/);
  });

  it("reads repeated flags and a comma-separated PODIUM_CORS_ORIGINS", () => {
    expect(corsOriginsFrom(["https://a.test"], " https://b.test, ,http://c.test:*")).toEqual(["https://a.test", "https://b.test", "http://c.test:*"]);
    expect(corsOriginsFrom(undefined, undefined)).toEqual([]);
  });
});

describe("CORS on the gateway (podium dev)", () => {
  let podium: DevFixture;
  const allowedOrigin = "https://console.example.com";

  beforeAll(async () => {
    podium = await startDevFixture({ gateway: { corsOrigins: [allowedOrigin] } });
  }, 60_000);

  afterAll(async () => {
    await podium?.close();
  });

  const preflight = (path: string, origin: string, method: string, headers: string) =>
    fetch(`${podium.url}${path}`, { method: "OPTIONS", headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers } });

  it("answers a REST preflight from an allowed origin, and marks the response", async () => {
    const res = await preflight("/api/v1/instances", allowedOrigin, "POST", "authorization, content-type");
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(allowedOrigin);
    expect(res.headers.get("vary")).toBe("Origin");
    expect(res.headers.get("access-control-allow-methods")?.split(", ")).toEqual(expect.arrayContaining(["GET", "POST", "PUT", "DELETE"]));
    expect(res.headers.get("access-control-allow-headers")?.toLowerCase().split(", ")).toEqual(expect.arrayContaining(["authorization", "content-type"]));
    expect(Number(res.headers.get("access-control-max-age"))).toBeGreaterThan(0);

    const list = await fetch(`${podium.url}/api/v1/instances`, { headers: { origin: allowedOrigin, authorization: `Bearer ${API_KEY}` } });
    expect(list.status).toBe(200);
    expect(list.headers.get("access-control-allow-origin")).toBe(allowedOrigin);
  });

  it("allows the headers connect-es and gRPC-Web send, and exposes what they read", async () => {
    const res = await preflight(
      "/podium.v1.InstanceService/ListInstances",
      allowedOrigin,
      "POST",
      "content-type, connect-protocol-version, connect-timeout-ms, x-grpc-web, x-user-agent, grpc-timeout, traceparent, tracestate",
    );
    expect(res.status).toBe(204);
    const allowed = res.headers.get("access-control-allow-headers")?.toLowerCase().split(", ") ?? [];
    expect(allowed).toEqual(expect.arrayContaining(["connect-protocol-version", "connect-timeout-ms", "x-grpc-web", "x-user-agent", "grpc-timeout", "traceparent", "tracestate"]));

    const call = await fetch(`${podium.url}/podium.v1.InstanceService/ListInstances`, {
      method: "POST",
      headers: { origin: allowedOrigin, "content-type": "application/json", "connect-protocol-version": "1", authorization: `Bearer ${API_KEY}` },
      body: "{}",
    });
    expect(call.status).toBe(200);
    expect(call.headers.get("access-control-allow-origin")).toBe(allowedOrigin);
    expect(call.headers.get("access-control-expose-headers")?.toLowerCase().split(", ")).toEqual(expect.arrayContaining(["grpc-status", "grpc-message"]));
  });

  it("refuses another origin's preflight with 403 and says why; adds nothing to its requests", async () => {
    const res = await preflight("/api/v1/instances", "https://evil.example.net", "POST", "authorization");
    expect(res.status).toBe(403);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(await res.json()).toEqual({ error: { code: "permission_denied", message: expect.stringContaining("https://evil.example.net is not allowed") } });
    const list = await fetch(`${podium.url}/api/v1/instances`, { headers: { origin: "https://evil.example.net", authorization: `Bearer ${API_KEY}` } });
    expect(list.status).toBe(200);
    expect(list.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("allows loopback pages on any port in podium dev, and adds no CORS header without an Origin", async () => {
    const res = await preflight("/api/v1/instances", "http://localhost:5173", "POST", "authorization, content-type");
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
    const plain = await fetch(`${podium.url}/api/v1/instances`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(plain.headers.get("access-control-allow-origin")).toBeNull();
  });
});
