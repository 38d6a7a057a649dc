/**
 * gRPC server reflection served by connect-node over real h2c, driven by a real grpc-js client the
 * way grpcurl works: list services, fetch descriptors, build a schema from them alone and call.
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry, fromBinary, toJson, fromJson, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { ServerReflectionRequestSchema, ServerReflectionResponseSchema, type ServerReflectionRequest, type ServerReflectionResponse } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflectionRequestSchema as V1AlphaRequestSchema, ServerReflectionResponseSchema as V1AlphaResponseSchema } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { HealthStatusRegistry } from "../../services/shared/grpc-health.js";
import { codec, insecureClient, KNOWN_CREATED_AT, KNOWN_INSTANCE_ID, podiumTestRoutes, startTestServer, StreamReader, unaryCall, type TestServer } from "./grpc-test-server.js";

type Ask = ServerReflectionRequest["messageRequest"];
const NOT_FOUND = 5;

describe("gRPC reflection over h2c with a grpc-js client", () => {
  let health: HealthStatusRegistry;
  let server: TestServer;
  let client: grpc.Client;
  let call: grpc.ClientDuplexStream<ServerReflectionRequest, ServerReflectionResponse>;
  let reader: StreamReader<ServerReflectionResponse>;

  beforeAll(async () => {
    health = new HealthStatusRegistry();
    server = await startTestServer(podiumTestRoutes(health));
    client = insecureClient(server);
    const req = codec(ServerReflectionRequestSchema);
    const res = codec(ServerReflectionResponseSchema);
    // One stream for all questions, as grpcurl does.
    call = client.makeBidiStreamRequest("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", req.serialize, res.deserialize);
    reader = new StreamReader(call);
  });

  afterAll(async () => {
    call.end();
    await reader.status;
    client.close();
    health.close();
    await server.close();
  });

  async function ask(messageRequest: Ask): Promise<ServerReflectionResponse> {
    call.write(create(ServerReflectionRequestSchema, { host: server.address, messageRequest }));
    const response = await reader.next();
    if (response === undefined) throw new Error("reflection stream ended");
    expect(response.validHost).toBe(server.address);
    expect(response.originalRequest?.messageRequest).toEqual(messageRequest);
    return response;
  }

  async function askFiles(messageRequest: Ask): Promise<FileDescriptorProto[]> {
    const response = await ask(messageRequest);
    if (response.messageResponse.case !== "fileDescriptorResponse") {
      throw new Error(`expected files, got ${JSON.stringify(toJson(ServerReflectionResponseSchema, response))}`);
    }
    return response.messageResponse.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
  }

  async function askError(messageRequest: Ask): Promise<number | undefined> {
    const response = await ask(messageRequest);
    return response.messageResponse.case === "errorResponse" ? response.messageResponse.value.errorCode : undefined;
  }

  it("list_services names the Podium service, health and reflection", async () => {
    const response = await ask({ case: "listServices", value: "*" });
    expect(response.messageResponse.case).toBe("listServicesResponse");
    const names = response.messageResponse.case === "listServicesResponse" ? response.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "podium.v1.InstanceService"]);
  });

  it("file_containing_symbol returns the service's file and all its transitive imports", async () => {
    const files = await askFiles({ case: "fileContainingSymbol", value: "podium.v1.InstanceService" });
    const names = files.map((f) => f.name);
    expect(names[0]).toBe("podium/v1/instance_service.proto");
    expect([...names].sort()).toEqual([
      "google/protobuf/struct.proto",
      "google/protobuf/timestamp.proto",
      "podium/v1/agent_history.proto",
      "podium/v1/instance.proto",
      "podium/v1/instance_service.proto",
      "podium/v1/stream_update.proto",
    ]);
    // Self-contained: every import of every returned file was returned too.
    for (const file of files) for (const dep of file.dependency) expect(names).toContain(dep);
    expect(new Set(names).size).toBe(names.length);
    const service = files[0]?.service.find((s) => s.name === "InstanceService");
    expect(service?.method.map((m) => m.name)).toContain("GetInstance");
  });

  it.each([
    ["podium.v1.InstanceService.GetInstance", "podium/v1/instance_service.proto"],
    ["podium.v1.GetInstanceRequest", "podium/v1/instance_service.proto"],
    ["podium.v1.CreateInstanceRequest.SecretsEntry", "podium/v1/instance_service.proto"],
    ["podium.v1.Instance", "podium/v1/instance.proto"],
    [".podium.v1.Instance", "podium/v1/instance.proto"],
    ["podium.v1.Instance.created_at", "podium/v1/instance.proto"],
    ["podium.v1.InstanceStatus", "podium/v1/instance.proto"],
    ["podium.v1.INSTANCE_STATUS_READY", "podium/v1/instance.proto"],
    ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
    ["grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"],
    ["grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto"],
    ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
    ["google.protobuf.NullValue", "google/protobuf/struct.proto"],
  ])("file_containing_symbol %s -> %s", async (symbol, file) => {
    const files = await askFiles({ case: "fileContainingSymbol", value: symbol });
    expect(files[0]?.name).toBe(file);
  });

  it("file_by_filename returns the file first, then its imports", async () => {
    const files = await askFiles({ case: "fileByFilename", value: "podium/v1/instance.proto" });
    expect(files.map((f) => f.name)).toEqual(["podium/v1/instance.proto", "google/protobuf/timestamp.proto"]);
  });

  it("answers unknown names with NOT_FOUND in the stream and keeps the stream open", async () => {
    expect(await askError({ case: "fileContainingSymbol", value: "podium.v1.Nope" })).toBe(NOT_FOUND);
    expect(await askError({ case: "fileByFilename", value: "podium/v1/nope.proto" })).toBe(NOT_FOUND);
    expect(await askError({ case: "allExtensionNumbersOfType", value: "podium.v1.Nope" })).toBe(NOT_FOUND);
    const extension = create(ServerReflectionRequestSchema, {
      messageRequest: { case: "fileContainingExtension", value: { containingType: "podium.v1.Instance", extensionNumber: 1000 } },
    }).messageRequest;
    expect(await askError(extension)).toBe(NOT_FOUND);
    expect((await ask({ case: "listServices", value: "" })).messageResponse.case).toBe("listServicesResponse");
  });

  it("all_extension_numbers_of_type answers an empty list for a known message without extensions", async () => {
    const response = await ask({ case: "allExtensionNumbersOfType", value: "podium.v1.Instance" });
    expect(response.messageResponse.case).toBe("allExtensionNumbersResponse");
    if (response.messageResponse.case === "allExtensionNumbersResponse") {
      expect(response.messageResponse.value.baseTypeName).toBe("podium.v1.Instance");
      expect(response.messageResponse.value.extensionNumber).toEqual([]);
    }
  });

  it("a client that only has the reflected descriptors can call GetInstance (grpcurl-style)", async () => {
    const files = await askFiles({ case: "fileContainingSymbol", value: "podium.v1.InstanceService" });
    // The server sends the asked-for file first (as grpc-go and grpc-java do); a FileDescriptorSet
    // wants imports first. (createFileRegistry(file, resolve) in protobuf-es 2.17 mis-orders
    // diamond imports such as struct.proto here, so the set form is used.)
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: importsFirst(files) }));
    const service = registry.getService("podium.v1.InstanceService");
    const method = service?.methods.find((m) => m.name === "GetInstance");
    if (service === undefined || method === undefined) throw new Error("GetInstance not in reflected schema");
    const input: DescMessage = method.input;
    const output: DescMessage = method.output;
    expect(input.typeName).toBe("podium.v1.GetInstanceRequest");

    const request = fromJson(input, { instanceId: KNOWN_INSTANCE_ID });
    const response = await unaryCall(client, `/${service.typeName}/${method.name}`, codec(input), codec(output), request);
    expect(toJson(output, response, { registry })).toEqual({
      instance: {
        instanceId: KNOWN_INSTANCE_ID,
        agentId: "agent-1",
        deploymentId: "echo-ts:1.0.0@local",
        status: "INSTANCE_STATUS_READY",
        runtime: "RUNTIME_TYPESCRIPT",
        createdAt: KNOWN_CREATED_AT.toISOString().replace(".000Z", "Z"),
        pid: 4242,
      },
    });

    const missing = fromJson(input, { instanceId: "inst-404" });
    await expect(unaryCall(client, `/${service.typeName}/${method.name}`, codec(input), codec(output), missing)).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
  });

  it("v1alpha answers list_services and file lookups the same way", async () => {
    const req = codec(V1AlphaRequestSchema);
    const res = codec(V1AlphaResponseSchema);
    const alpha = client.makeBidiStreamRequest("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", req.serialize, res.deserialize);
    const alphaReader = new StreamReader(alpha);
    alpha.write(create(V1AlphaRequestSchema, { messageRequest: { case: "listServices", value: "" } }));
    const list = await alphaReader.next();
    expect(list?.messageResponse.case).toBe("listServicesResponse");
    if (list?.messageResponse.case === "listServicesResponse") {
      expect(list.messageResponse.value.service.map((s) => s.name)).toContain("podium.v1.InstanceService");
    }
    alpha.write(create(V1AlphaRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "podium.v1.Instance" } }));
    const file = await alphaReader.next();
    expect(file?.messageResponse.case).toBe("fileDescriptorResponse");
    if (file?.messageResponse.case === "fileDescriptorResponse") {
      const first = file.messageResponse.value.fileDescriptorProto[0];
      expect(first && fromBinary(FileDescriptorProtoSchema, first).name).toBe("podium/v1/instance.proto");
    }
    alpha.write(create(V1AlphaRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "no.Such" } }));
    const miss = await alphaReader.next();
    expect(miss?.messageResponse.case === "errorResponse" && miss.messageResponse.value.errorCode).toBe(NOT_FOUND);
    alpha.end();
    expect((await alphaReader.status).code).toBe(grpc.status.OK);
  });
});

/** `files` ordered so that every file comes after the files it imports. */
function importsFirst(files: FileDescriptorProto[]): FileDescriptorProto[] {
  const byName = new Map(files.map((f) => [f.name, f]));
  const out: FileDescriptorProto[] = [];
  const visit = (file: FileDescriptorProto): void => {
    if (out.includes(file)) return;
    for (const dep of file.dependency) {
      const imported = byName.get(dep);
      if (imported === undefined) throw new Error(`${file.name} imports ${dep}, which reflection did not send`);
      visit(imported);
    }
    out.push(file);
  };
  files.forEach(visit);
  return out;
}
