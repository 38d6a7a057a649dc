import { describe, it, expect, beforeAll, afterAll, beforeEach } from "@jest/globals";
import { PodiumClient, PodiumConnectionError, encodeFilePath } from "../../packages/client/src/index.js";
import { FakeUpstream, json, refusedUrl } from "./fake-upstream.js";

describe("PodiumClient REST calls (real sockets)", () => {
  let upstream: FakeUpstream;
  let client: PodiumClient;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
  });
  afterAll(async () => {
    await client.close();
    await upstream.close();
  });
  beforeEach(async () => {
    upstream.requests.length = 0;
    await client?.close();
    client = new PodiumClient({ url: upstream.url, apiKey: "secret-key", sleep: async () => undefined }, {});
  });

  describe("createInstance", () => {
    it("POSTs the contract's body with the bearer key and returns the ids", async () => {
      upstream.handler = (_req, res) => json(res, 200, { instance_id: "inst-abc123", deployment_id: "coding-agent:1.0.0@local" });
      const created = await client.createInstance({
        agentType: "coding-agent",
        agentId: "optional-agent-id",
        secrets: { TOKEN: "t" },
        environment: { MODE: "dev" },
      });
      expect(created).toEqual({ instanceId: "inst-abc123", deploymentId: "coding-agent:1.0.0@local" });
      const [request] = upstream.requests;
      expect(request?.method).toBe("POST");
      expect(request?.url).toBe("/api/v1/instances");
      expect(request?.headers.authorization).toBe("Bearer secret-key");
      expect(request?.headers["content-type"]).toBe("application/json");
      expect(request?.body).toBe('{"deployment_id":"coding-agent:1.0.0@local","agent_id":"optional-agent-id","secrets":{"TOKEN":"t"},"environment":{"MODE":"dev"}}');
    });

    it("omits agent_id when not given, sends empty maps, and honours an explicit deploymentId", async () => {
      upstream.handler = (_req, res) => json(res, 200, { instance: { instanceId: "i-2", deploymentId: "echo:2.0.0@s3" } });
      await expect(client.createInstance({ agentType: "echo", deploymentId: "echo:2.0.0@s3" })).resolves.toEqual({
        instanceId: "i-2",
        deploymentId: "echo:2.0.0@s3",
      });
      expect(upstream.requests[0]?.body).toBe('{"deployment_id":"echo:2.0.0@s3","secrets":{},"environment":{}}');
    });

    it("rejects an answer without an instance id as a protocol error", async () => {
      upstream.handler = (_req, res) => json(res, 200, { ok: true });
      const c = new PodiumClient({ url: upstream.url }, {});
      await expect(c.createInstance({ agentType: "echo" })).rejects.toMatchObject({ kind: "protocol" });
      expect(upstream.count("POST")).toBe(1); // not retried
      await c.close();
    });

    it("rejects bad arguments with TypeError before any request", async () => {
      await expect(client.createInstance({ agentType: "" })).rejects.toThrow(TypeError);
      expect(upstream.requests).toHaveLength(0);
    });

    it("sends no Authorization header without a key", async () => {
      upstream.handler = (_req, res) => json(res, 200, { instance_id: "i" });
      const c = new PodiumClient({ url: upstream.url }, {});
      await c.createInstance({ agentType: "echo" });
      expect(upstream.requests[0]?.headers.authorization).toBeUndefined();
      await c.close();
    });
  });

  describe("isAlive", () => {
    it("GETs the instance: true on 2xx, false on 404", async () => {
      upstream.handler = (req, res) => (req.url === "/api/v1/instances/inst-1" ? json(res, 200, {}) : json(res, 404, {}));
      await expect(client.isAlive("inst-1")).resolves.toBe(true);
      await expect(client.isAlive("inst-2")).resolves.toBe(false);
      expect(upstream.requests.map((r) => `${r.method} ${r.url} ${r.headers.authorization}`)).toEqual([
        "GET /api/v1/instances/inst-1 Bearer secret-key",
        "GET /api/v1/instances/inst-2 Bearer secret-key",
      ]);
    });

    it("is false when the probe stalls past its timeout or the port refuses", async () => {
      upstream.handler = () => undefined;
      const c = new PodiumClient({ url: upstream.url, isAliveTimeoutMs: 100 }, {});
      const started = Date.now();
      await expect(c.isAlive("inst-1")).resolves.toBe(false);
      expect(Date.now() - started).toBeLessThan(5_000);
      await c.close();
      const refused = new PodiumClient({ url: await refusedUrl() }, {});
      await expect(refused.isAlive("inst-1")).resolves.toBe(false);
      await refused.close();
    });
  });

  describe("stopInstance", () => {
    it("DELETEs the instance; 200 and 404 are success, 403 is an error", async () => {
      upstream.handler = (req, res) => {
        if (req.url.endsWith("/a")) json(res, 200, {});
        else if (req.url.endsWith("/b")) json(res, 404, { error: { code: "not_found", message: "gone" } });
        else json(res, 403, { error: { code: "permission_denied", message: "not yours" } });
      };
      await expect(client.stopInstance("a")).resolves.toBeUndefined();
      await expect(client.stopInstance("b")).resolves.toBeUndefined();
      await expect(client.stopInstance("c")).rejects.toMatchObject({ kind: "http", status: 403, code: "permission_denied" });
      expect(upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual(["DELETE /api/v1/instances/a", "DELETE /api/v1/instances/b", "DELETE /api/v1/instances/c"]);
    });
  });

  describe("file API", () => {
    beforeEach(() => {
      upstream.handler = (req, res) => {
        if (req.url.startsWith("/api/v1/instances/inst-1/files?") || req.url === "/api/v1/instances/inst-1/files") {
          json(res, 200, {
            entries: [
              { path: "src", name: "src", type: "directory", size: "0" },
              { path: "src/a b.ts", name: "a b.ts", type: "file", size: "12", modifiedAt: "2025-01-01T00:00:00Z", iteration: "3" },
            ],
          });
        } else if (req.url.endsWith("/history")) {
          json(res, 200, { iterations: [{ iteration: "1", timestamp: "2025-01-01T00:00:00Z", size: "5", hash: "sha256:aa", change: "created" }] });
        } else {
          json(res, 200, { file: { path: "src/a b.ts", content: "hello", encoding: "utf8", size: "5", iteration: "2", hash: "sha256:bb" } });
        }
      };
    });

    it("listFiles uses ?path=&depth= and normalises entries", async () => {
      const entries = await client.listFiles("inst-1", "src", 2);
      expect(upstream.requests[0]?.url).toBe("/api/v1/instances/inst-1/files?path=src&depth=2");
      expect(entries).toEqual([
        { path: "src", name: "src", type: "directory", size: 0 },
        { path: "src/a b.ts", name: "a b.ts", type: "file", size: 12, modifiedAt: "2025-01-01T00:00:00.000Z", iteration: 3 },
      ]);
      await client.listFiles("inst-1");
      expect(upstream.requests[1]?.url).toBe("/api/v1/instances/inst-1/files");
    });

    it("readFile, fileHistory and fileAtIteration encode the path per segment", async () => {
      const file = await client.readFile("inst-1", "src/a b.ts");
      const history = await client.fileHistory("inst-1", "src/a b.ts");
      const old = await client.fileAtIteration("inst-1", "dir/#1?.md", 2);
      expect(upstream.requests.map((r) => r.url)).toEqual([
        "/api/v1/instances/inst-1/files/src/a%20b.ts",
        "/api/v1/instances/inst-1/files/src/a%20b.ts/history",
        "/api/v1/instances/inst-1/files/dir/%231%3F.md/at/2",
      ]);
      expect(file).toEqual({ path: "src/a b.ts", content: "hello", encoding: "utf8", size: 5, iteration: 2, hash: "sha256:bb" });
      expect(history).toEqual([{ iteration: 1, timestamp: "2025-01-01T00:00:00.000Z", size: 5, hash: "sha256:aa", change: "created" }]);
      expect(old.content).toBe("hello");
    });

    it("propagates the server's error as PodiumConnectionError", async () => {
      upstream.handler = (_req, res) => json(res, 404, { error: { code: "not_found", message: "no such file: x" } });
      const error = await client.readFile("inst-1", "x").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PodiumConnectionError);
      expect(error).toMatchObject({ kind: "http", status: 404, code: "not_found" });
      expect((error as Error).message).toContain("no such file: x");
    });

    it("times out a stalled file call", async () => {
      upstream.handler = () => undefined;
      const c = new PodiumClient({ url: upstream.url, fileTimeoutMs: 100 }, {});
      await expect(c.listFiles("inst-1")).rejects.toMatchObject({ kind: "timeout" });
      await c.close();
    });

    it("honours the caller's AbortSignal", async () => {
      upstream.handler = () => undefined;
      const controller = new AbortController();
      const pending = client.readFile("inst-1", "a.txt", { signal: controller.signal });
      setTimeout(() => controller.abort(), 30);
      await expect(pending).rejects.toMatchObject({ kind: "aborted" });
    });

    it("rejects a malformed answer as a protocol error", async () => {
      upstream.handler = (_req, res) => json(res, 200, { file: { path: "a" } });
      await expect(client.readFile("inst-1", "a")).rejects.toMatchObject({ kind: "protocol" });
    });
  });
});

describe("encodeFilePath", () => {
  it.each([
    ["a.txt", "a.txt"],
    ["/src//a b.ts", "src/a%20b.ts"],
    ["dir/ü/%.md", "dir/%C3%BC/%25.md"],
  ])("%s -> %s", (input, output) => {
    expect(encodeFilePath(input)).toBe(output);
  });

  it("rejects empty paths", () => {
    expect(() => encodeFilePath("")).toThrow(TypeError);
    expect(() => encodeFilePath("//")).toThrow(TypeError);
  });
});
