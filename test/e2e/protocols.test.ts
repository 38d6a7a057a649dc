/** One port, every protocol: Connect (HTTP/1.1 and h2c), gRPC-Web, gRPC (h2c), REST and buf curl. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { DeploymentService } from "../../gen/podium/v1/deployment_service_pb.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

let podium: DevFixture;
const bufCache = fs.mkdtempSync(path.join(os.tmpdir(), "podium-buf-"));
beforeAll(async () => {
  podium = await startDevFixture();
});
afterAll(async () => {
  await podium.close();
  fs.rmSync(bufCache, { recursive: true, force: true });
});

const withKey: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${API_KEY}`);
  return next(req);
};

describe("protocols on the gateway port", () => {
  it.each([
    ["Connect over HTTP/1.1", (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [withKey] })],
    ["Connect over h2c", (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "2", interceptors: [withKey] })],
    ["gRPC-Web over HTTP/1.1", (baseUrl: string) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors: [withKey] })],
    ["gRPC over h2c", (baseUrl: string) => createGrpcTransport({ baseUrl, interceptors: [withKey] })],
  ])("%s lists deployments", async (_name, makeTransport: (baseUrl: string) => Transport) => {
    const client = createClient(DeploymentService, makeTransport(podium.url));
    const { deployments } = await client.listDeployments({});
    expect(deployments.map((d) => d.deploymentId)).toEqual(expect.arrayContaining(["echo-ts:1.0.0@local", "echo-py:1.0.0@local"]));
  });

  it("serves buf curl through reflection (what grpcurl users do)", async () => {
    // Asynchronous on purpose: the server runs in this process and must keep answering.
    const run = promisify(execFile);
    const buf = path.join(REPO_ROOT, "node_modules/.bin/buf");
    const options = { env: { ...process.env, BUF_CACHE_DIR: bufCache }, timeout: 30_000 };
    const common = ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-H", `authorization: Bearer ${API_KEY}`];
    const list = await run(buf, [...common, "--list-methods", podium.url], options);
    expect(list.stdout).toContain("podium.v1.InstanceService/CreateInstance");
    const call = await run(buf, [...common, "-d", "{}", `${podium.url}/podium.v1.DeploymentService/ListDeployments`], options);
    expect(call.stdout).toContain("echo-py:1.0.0@local");
  });
});
