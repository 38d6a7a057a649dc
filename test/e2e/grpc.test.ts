/**
 * gRPC on the gateway's one port: a @grpc/grpc-js client creates an instance and streams its
 * updates; health reports SERVING; reflection lists the services; calls without a key fail.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { codec, StreamReader, unaryCall } from "../helpers/grpc-js.js";
import {
  CreateInstanceRequestSchema,
  CreateInstanceResponseSchema,
  SendMessageRequestSchema,
  SendMessageResponseSchema,
  StopInstanceRequestSchema,
  StopInstanceResponseSchema,
  StreamUpdatesRequestSchema,
  StreamUpdatesResponseSchema,
} from "../../gen/podium/v1/instance_service_pb.js";
import { InstanceStatus } from "../../gen/podium/v1/instance_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflectionRequestSchema, ServerReflectionResponseSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";

let podium: DevFixture;
let client: grpc.Client;
const auth = new grpc.Metadata();
auth.set("authorization", `Bearer ${API_KEY}`);
const S = "/podium.v1.InstanceService/";

beforeAll(async () => {
  podium = await startDevFixture();
  client = new grpc.Client(`127.0.0.1:${podium.server.port}`, grpc.credentials.createInsecure());
});
afterAll(async () => {
  client.close();
  await podium.close();
});

function call<I, O>(path: string, input: ReturnType<typeof codec<never>>, output: ReturnType<typeof codec<never>>, req: I, metadata = auth): Promise<O> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, input.serialize as (v: I) => Buffer, output.deserialize as (b: Buffer) => O, req, metadata, (err, res) => (err ? reject(err) : resolve(res as O)));
  });
}

describe("gRPC through the gateway", () => {
  it("creates an instance, sends a message and streams its updates", async () => {
    const created = await call<unknown, { instance?: { instanceId: string; status: InstanceStatus; agentId: string } }>(
      S + "CreateInstance",
      codec(CreateInstanceRequestSchema) as never,
      codec(CreateInstanceResponseSchema) as never,
      create(CreateInstanceRequestSchema, { deploymentId: "echo-py:1.0.0@local" }),
    );
    const instanceId = created.instance?.instanceId ?? "";
    expect(instanceId).toMatch(/^inst-/);
    expect(created.instance?.status).toBe(InstanceStatus.READY);

    const out = codec(StreamUpdatesResponseSchema);
    const stream = client.makeServerStreamRequest(S + "StreamUpdates", codec(StreamUpdatesRequestSchema).serialize, out.deserialize, create(StreamUpdatesRequestSchema, { instanceId }), auth);
    const reader = new StreamReader(stream);
    await new Promise((r) => setTimeout(r, 100));
    const sent = await call<unknown, { seq: bigint }>(
      S + "SendMessage",
      codec(SendMessageRequestSchema) as never,
      codec(SendMessageResponseSchema) as never,
      create(SendMessageRequestSchema, { instanceId, content: { text: "hello grpc" } }),
    );
    expect(sent.seq).toBeGreaterThan(0n);
    const types: string[] = [];
    let text = "";
    let lastSeq = 0n;
    let ended = false;
    while (!ended) {
      const message = await reader.next(10_000);
      if (!message) break;
      for (const update of message.updates) {
        expect(update.seq).toBeGreaterThan(lastSeq);
        lastSeq = update.seq;
        expect(update.agentId).toBe(created.instance?.agentId);
        types.push(update.messageType);
        if (update.messageType === "stream_update") text += String(update.content?.text ?? "");
        if (update.messageType === "stream_end") ended = true;
      }
    }
    expect(types[0]).toBe("stream_start");
    expect(text).toBe("hello grpc");
    stream.cancel();
    await reader.status;
    const stopped = await call<unknown, { instance?: { status: InstanceStatus } }>(
      S + "StopInstance",
      codec(StopInstanceRequestSchema) as never,
      codec(StopInstanceResponseSchema) as never,
      create(StopInstanceRequestSchema, { instanceId }),
    );
    expect(stopped.instance?.status).toBe(InstanceStatus.TERMINATED);
  });

  it("refuses calls without a valid key with UNAUTHENTICATED", async () => {
    const wrong = new grpc.Metadata();
    wrong.set("authorization", "Bearer nope");
    for (const metadata of [new grpc.Metadata(), wrong]) {
      await expect(
        call(
          S + "CreateInstance",
          codec(CreateInstanceRequestSchema) as never,
          codec(CreateInstanceResponseSchema) as never,
          create(CreateInstanceRequestSchema, { deploymentId: "echo-ts:1.0.0@local" }),
          metadata,
        ),
      ).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    }
  });

  it("maps errors to gRPC codes", async () => {
    await expect(
      call(
        S + "CreateInstance",
        codec(CreateInstanceRequestSchema) as never,
        codec(CreateInstanceResponseSchema) as never,
        create(CreateInstanceRequestSchema, { deploymentId: "missing:9.9.9@local" }),
      ),
    ).rejects.toMatchObject({ code: grpc.status.NOT_FOUND, details: expect.stringContaining("unknown deployment") });
  });

  it("reports SERVING through grpc.health.v1 without a key", async () => {
    const res = await unaryCall(client, "/grpc.health.v1.Health/Check", codec(HealthCheckRequestSchema), codec(HealthCheckResponseSchema), create(HealthCheckRequestSchema, {}));
    expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it("lists the public services through reflection", async () => {
    const stream = client.makeBidiStreamRequest(
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      codec(ServerReflectionRequestSchema).serialize,
      codec(ServerReflectionResponseSchema).deserialize,
      auth,
    );
    const reader = new StreamReader(stream);
    stream.write(create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }));
    const res = await reader.next();
    stream.end();
    await reader.status;
    const names = res?.messageResponse.case === "listServicesResponse" ? res.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(expect.arrayContaining(["podium.v1.InstanceService", "podium.v1.DeploymentService", "podium.v1.FileService", "grpc.health.v1.Health"]));
  });
});
