/**
 * Reflection handlers through createRouterTransport (no socket): extension queries against a
 * proto2 file that declares extensions, DescFile[] input, and malformed requests.
 */
import { describe, it, expect } from "@jest/globals";
import { create, createFileRegistry, fromBinary, type DescFile } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label as Label, FieldDescriptorProto_Type as Type, FileDescriptorProtoSchema, file_google_protobuf_descriptor } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { ExtensionRequestSchema, ServerReflection, ServerReflectionRequestSchema, type ServerReflectionRequest, type ServerReflectionResponse } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { reflectionRoutes } from "../../services/shared/grpc-reflection.js";

const FILE = "podium/test/probe.proto";
const optional = { label: Label.OPTIONAL };

/**
 * syntax = "proto2"; package podium.test; import "google/protobuf/descriptor.proto";
 * message Base { optional string id = 1; extensions 100 to 200;
 *   message Inner { extend Base { optional int32 inner_ext = 150; } } }
 * extend Base { optional string note = 101; }
 * extend google.protobuf.MethodOptions { optional bool audited = 50001; }
 * service Probe { rpc Ping(Base) returns (Base); }
 */
function probeFile(): DescFile {
  const proto = create(FileDescriptorProtoSchema, {
    name: FILE,
    package: "podium.test",
    syntax: "proto2",
    dependency: ["google/protobuf/descriptor.proto"],
    messageType: [
      {
        name: "Base",
        field: [{ name: "id", number: 1, type: Type.STRING, jsonName: "id", ...optional }],
        extensionRange: [{ start: 100, end: 201 }],
        nestedType: [
          {
            name: "Inner",
            extension: [{ name: "inner_ext", number: 150, type: Type.INT32, extendee: ".podium.test.Base", ...optional }],
          },
        ],
      },
    ],
    extension: [
      { name: "note", number: 101, type: Type.STRING, extendee: ".podium.test.Base", ...optional },
      { name: "audited", number: 50001, type: Type.BOOL, extendee: ".google.protobuf.MethodOptions", ...optional },
    ],
    service: [{ name: "Probe", method: [{ name: "Ping", inputType: ".podium.test.Base", outputType: ".podium.test.Base" }] }],
  });
  const registry = createFileRegistry(proto, (name) => (name === file_google_protobuf_descriptor.proto.name ? file_google_protobuf_descriptor : undefined));
  const file = registry.getFile(FILE);
  if (file === undefined) throw new Error("probe file not registered");
  return file;
}

const transport = createRouterTransport(reflectionRoutes([probeFile()]));
const v1 = createClient(ServerReflection, transport);
const v1alpha = createClient(ServerReflectionV1Alpha, transport);

async function askAll(requests: ServerReflectionRequest["messageRequest"][]): Promise<ServerReflectionResponse[]> {
  async function* input(): AsyncGenerator<ServerReflectionRequest> {
    for (const messageRequest of requests) yield create(ServerReflectionRequestSchema, { messageRequest });
  }
  const out: ServerReflectionResponse[] = [];
  for await (const response of v1.serverReflectionInfo(input())) out.push(response);
  return out;
}

async function ask(messageRequest: ServerReflectionRequest["messageRequest"]): Promise<ServerReflectionResponse["messageResponse"]> {
  const [response] = await askAll([messageRequest]);
  if (response === undefined) throw new Error("no response");
  return response.messageResponse;
}

function fileNames(answer: ServerReflectionResponse["messageResponse"]): string[] {
  if (answer.case !== "fileDescriptorResponse") throw new Error(`expected files, got ${answer.case ?? "nothing"}`);
  return answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
}

describe("reflection: extensions and DescFile[] input", () => {
  it("advertises every service of the given files plus the built-ins", async () => {
    const answer = await ask({ case: "listServices", value: "" });
    expect(answer.case === "listServicesResponse" && answer.value.service.map((s) => s.name)).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "podium.test.Probe",
    ]);
  });

  it("all_extension_numbers_of_type lists top-level and nested extensions, sorted", async () => {
    const base = await ask({ case: "allExtensionNumbersOfType", value: "podium.test.Base" });
    expect(base).toEqual({ case: "allExtensionNumbersResponse", value: expect.objectContaining({ baseTypeName: "podium.test.Base", extensionNumber: [101, 150] }) });
    const options = await ask({ case: "allExtensionNumbersOfType", value: ".google.protobuf.MethodOptions" });
    expect(options.case === "allExtensionNumbersResponse" && options.value.extensionNumber).toEqual([50001]);
  });

  it("file_containing_extension returns the declaring file with its imports", async () => {
    const extension = (containingType: string, extensionNumber: number): ServerReflectionRequest["messageRequest"] => ({
      case: "fileContainingExtension",
      value: create(ExtensionRequestSchema, { containingType, extensionNumber }),
    });
    expect(fileNames(await ask(extension("podium.test.Base", 150)))).toEqual([FILE, "google/protobuf/descriptor.proto"]);
    expect(fileNames(await ask(extension(".google.protobuf.MethodOptions", 50001)))[0]).toBe(FILE);
    const missing = await ask(extension("podium.test.Base", 199));
    expect(missing.case === "errorResponse" && missing.value.errorCode).toBe(5);
  });

  it("extensions and nested types resolve as symbols", async () => {
    for (const symbol of ["podium.test.note", "podium.test.Base.Inner.inner_ext", "podium.test.Base.Inner", "podium.test.Probe.Ping"]) {
      expect(fileNames(await ask({ case: "fileContainingSymbol", value: symbol }))[0]).toBe(FILE);
    }
    expect(fileNames(await ask({ case: "fileContainingSymbol", value: "google.protobuf.MethodOptions" }))).toEqual(["google/protobuf/descriptor.proto"]);
  });

  it("an empty request gets INVALID_ARGUMENT in the stream; later requests are still answered", async () => {
    const [empty, list] = await askAll([{ case: undefined }, { case: "listServices", value: "" }]);
    expect(empty?.messageResponse.case === "errorResponse" && empty.messageResponse.value.errorCode).toBe(3);
    expect(list?.messageResponse.case).toBe("listServicesResponse");
  });

  it("v1alpha gives the same answers", async () => {
    async function* input(): AsyncGenerator<{ messageRequest: { case: "allExtensionNumbersOfType"; value: string } }> {
      yield { messageRequest: { case: "allExtensionNumbersOfType", value: "podium.test.Base" } };
    }
    const answers = [];
    for await (const response of v1alpha.serverReflectionInfo(input())) answers.push(response);
    expect(answers).toHaveLength(1);
    const answer = answers[0]?.messageResponse;
    expect(answer?.case === "allExtensionNumbersResponse" && answer.value.extensionNumber).toEqual([101, 150]);
    expect(answers[0]?.originalRequest?.messageRequest.case).toBe("allExtensionNumbersOfType");
  });
});
