/**
 * grpc.health.v1.Health served by connect-node over real h2c, called by a real grpc-js client.
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthListRequestSchema,
  HealthListResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import { HealthStatusRegistry } from "../../services/shared/grpc-health.js";
import { codec, insecureClient, podiumTestRoutes, startTestServer, StreamReader, unaryCall, type TestServer } from "./grpc-test-server.js";

const INSTANCE_SERVICE = "podium.v1.InstanceService";
const requestCodec = codec(HealthCheckRequestSchema);
const responseCodec = codec(HealthCheckResponseSchema);

describe("gRPC health over h2c with a grpc-js client", () => {
  let health: HealthStatusRegistry;
  let server: TestServer;
  let client: grpc.Client;

  beforeAll(async () => {
    health = new HealthStatusRegistry({ [INSTANCE_SERVICE]: ServingStatus.SERVING });
    server = await startTestServer(podiumTestRoutes(health));
    client = insecureClient(server);
  });

  afterAll(async () => {
    client.close();
    health.close();
    await server.close();
  });

  const check = (service: string): Promise<HealthCheckResponse> => unaryCall(client, "/grpc.health.v1.Health/Check", requestCodec, responseCodec, create(HealthCheckRequestSchema, { service }));

  const watch = (service: string): { call: grpc.ClientReadableStream<HealthCheckResponse>; reader: StreamReader<HealthCheckResponse> } => {
    const call = client.makeServerStreamRequest("/grpc.health.v1.Health/Watch", requestCodec.serialize, responseCodec.deserialize, create(HealthCheckRequestSchema, { service }));
    return { call, reader: new StreamReader(call) };
  };

  const waitFor = async (condition: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  };

  it("Check answers SERVING for the server and a registered service", async () => {
    expect((await check("")).status).toBe(ServingStatus.SERVING);
    expect((await check(INSTANCE_SERVICE)).status).toBe(ServingStatus.SERVING);
  });

  it("Check on an unknown service fails with NOT_FOUND", async () => {
    await expect(check("no.such.Service")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it("List returns every registered status", async () => {
    const list = await unaryCall(client, "/grpc.health.v1.Health/List", codec(HealthListRequestSchema), codec(HealthListResponseSchema), create(HealthListRequestSchema));
    expect(Object.keys(list.statuses).sort()).toEqual(["", INSTANCE_SERVICE]);
    expect(list.statuses[INSTANCE_SERVICE]?.status).toBe(ServingStatus.SERVING);
  });

  it("Watch sends the current status, then each change, and ends when the client cancels", async () => {
    const { call, reader } = watch(INSTANCE_SERVICE);
    expect((await reader.next())?.status).toBe(ServingStatus.SERVING);

    health.setStatus(INSTANCE_SERVICE, ServingStatus.NOT_SERVING);
    expect((await reader.next())?.status).toBe(ServingStatus.NOT_SERVING);
    expect((await check(INSTANCE_SERVICE)).status).toBe(ServingStatus.NOT_SERVING);

    health.setStatus(INSTANCE_SERVICE, ServingStatus.SERVING);
    expect((await reader.next())?.status).toBe(ServingStatus.SERVING);

    expect(health.watcherCount).toBe(1);
    call.cancel();
    expect((await reader.status).code).toBe(grpc.status.CANCELLED);
    // The server-side handler saw the abort and let go of its watcher.
    await waitFor(() => health.watcherCount === 0);
    expect(health.watcherCount).toBe(0);
  });

  it("Watch on an unknown service says SERVICE_UNKNOWN and stays open until it is registered", async () => {
    const { call, reader } = watch("podium.v1.Later");
    expect((await reader.next())?.status).toBe(ServingStatus.SERVICE_UNKNOWN);
    health.setStatus("podium.v1.Later", ServingStatus.SERVING);
    expect((await reader.next())?.status).toBe(ServingStatus.SERVING);
    call.cancel();
    expect((await reader.status).code).toBe(grpc.status.CANCELLED);
    await waitFor(() => health.watcherCount === 0);
    expect(health.watcherCount).toBe(0);
  });
});

describe("HealthStatusRegistry.shutdown over h2c", () => {
  it("sets everything NOT_SERVING, tells watchers and ends their streams cleanly", async () => {
    const health = new HealthStatusRegistry({ [INSTANCE_SERVICE]: ServingStatus.SERVING });
    const server = await startTestServer(podiumTestRoutes(health));
    const client = insecureClient(server);
    try {
      const call = client.makeServerStreamRequest("/grpc.health.v1.Health/Watch", requestCodec.serialize, responseCodec.deserialize, create(HealthCheckRequestSchema, { service: "" }));
      const reader = new StreamReader(call);
      expect((await reader.next())?.status).toBe(ServingStatus.SERVING);

      health.shutdown();
      expect((await reader.next())?.status).toBe(ServingStatus.NOT_SERVING);
      expect(await reader.next()).toBeUndefined();
      expect((await reader.status).code).toBe(grpc.status.OK);

      const after = await unaryCall(client, "/grpc.health.v1.Health/Check", requestCodec, responseCodec, create(HealthCheckRequestSchema, { service: INSTANCE_SERVICE }));
      expect(after.status).toBe(ServingStatus.NOT_SERVING);
      // Ignored after shutdown, as in grpc-go.
      health.setStatus(INSTANCE_SERVICE, ServingStatus.SERVING);
      expect(health.getStatus(INSTANCE_SERVICE)).toBe(ServingStatus.NOT_SERVING);
      expect(health.watcherCount).toBe(0);
    } finally {
      client.close();
      health.close();
      await server.close();
    }
  });
});
