/**
 * HealthStatusRegistry semantics and the Health handlers through createRouterTransport (no socket).
 */
import { describe, it, expect } from "@jest/globals";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { healthRoutes, HealthStatusRegistry, ServingStatus } from "../../services/shared/grpc-health.js";

describe("HealthStatusRegistry", () => {
  it("reports the server as SERVING by default and knows only registered services", () => {
    const health = new HealthStatusRegistry({ "podium.v1.InstanceService": ServingStatus.NOT_SERVING });
    expect(health.getStatus("")).toBe(ServingStatus.SERVING);
    expect(health.getStatus("podium.v1.InstanceService")).toBe(ServingStatus.NOT_SERVING);
    expect(health.getStatus("podium.v1.Other")).toBeUndefined();
    expect(new HealthStatusRegistry({ "": ServingStatus.NOT_SERVING }).getStatus("")).toBe(ServingStatus.NOT_SERVING);
  });

  it("gives a slow watcher the latest status only, and never the same status twice in a row", async () => {
    const health = new HealthStatusRegistry();
    const watch = health.watch("");
    expect((await watch.next()).value).toBe(ServingStatus.SERVING);
    health.setStatus("", ServingStatus.NOT_SERVING);
    health.setStatus("", ServingStatus.SERVING);
    health.setStatus("", ServingStatus.NOT_SERVING);
    expect((await watch.next()).value).toBe(ServingStatus.NOT_SERVING);
    health.setStatus("", ServingStatus.NOT_SERVING);
    health.setStatus("", ServingStatus.SERVING);
    expect((await watch.next()).value).toBe(ServingStatus.SERVING);
    await watch.return();
    expect(health.watcherCount).toBe(0);
  });

  it("ends a watch when its signal aborts", async () => {
    const health = new HealthStatusRegistry();
    const abort = new AbortController();
    const watch = health.watch("", abort.signal);
    expect((await watch.next()).value).toBe(ServingStatus.SERVING);
    const pending = watch.next();
    abort.abort();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(health.watcherCount).toBe(0);
  });

  it("after shutdown a new watch gets NOT_SERVING and ends at once", async () => {
    const health = new HealthStatusRegistry();
    health.shutdown();
    const seen: ServingStatus[] = [];
    for await (const status of health.watch("")) seen.push(status);
    expect(seen).toEqual([ServingStatus.NOT_SERVING]);
  });
});

describe("healthRoutes through createRouterTransport", () => {
  const health = new HealthStatusRegistry({ "podium.v1.InstanceService": ServingStatus.SERVING });
  const client = createClient(Health, createRouterTransport(healthRoutes(health)));

  it("Check, List and NOT_FOUND", async () => {
    expect((await client.check({ service: "podium.v1.InstanceService" })).status).toBe(ServingStatus.SERVING);
    const error = await client.check({ service: "nope" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect(error instanceof ConnectError && error.code).toBe(Code.NotFound);
    const list = await client.list({});
    expect(Object.fromEntries(Object.entries(list.statuses).map(([k, v]) => [k, v.status]))).toEqual({
      "": ServingStatus.SERVING,
      "podium.v1.InstanceService": ServingStatus.SERVING,
    });
  });

  it("Watch streams changes and stops when the client aborts", async () => {
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    const done = (async () => {
      for await (const response of client.watch({ service: "podium.v1.Late" }, { signal: abort.signal })) {
        seen.push(response.status);
        if (response.status === ServingStatus.SERVICE_UNKNOWN) health.setStatus("podium.v1.Late", ServingStatus.SERVING);
        else abort.abort();
      }
    })();
    await expect(done).rejects.toMatchObject({ code: Code.Canceled });
    expect(seen).toEqual([ServingStatus.SERVICE_UNKNOWN, ServingStatus.SERVING]);
    for (let i = 0; i < 100 && health.watcherCount > 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(health.watcherCount).toBe(0);
  });
});
