/**
 * gRPC server reflection (grpc.reflection.v1 and the older v1alpha, which many clients still try
 * first or fall back to) for connect-node, which ships none. With it, grpcurl, `buf curl`, Postman
 * and grpc-js reflection clients can list and call Podium's services without the .proto files.
 *
 *   connectNodeAdapter({ routes: (r) => {
 *     instanceRoutes(deps)(r);
 *     healthRoutes(health)(r);
 *     reflectionRoutes([InstanceService, DeploymentService])(r);
 *   } });
 *
 * Pass the services to advertise (DescService[]), or files (DescFile[]) to advertise every service
 * they declare. list_services answers those plus grpc.health.v1.Health and both reflection
 * services. File answers carry the serialized FileDescriptorProto of the file and of all its
 * transitive imports (google/protobuf/timestamp.proto, ...). A lookup that finds nothing is answered
 * in the stream with error_response {error_code: NOT_FOUND}; the stream stays open.
 */
import { create, fromBinary, toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import {
  ServerReflection,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1Alpha,
  ServerReflectionRequestSchema as ServerReflectionRequestV1AlphaSchema,
  ServerReflectionResponseSchema as ServerReflectionResponseV1AlphaSchema,
  type ServerReflectionResponse as ServerReflectionResponseV1Alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { ReflectionIndex } from "./grpc-reflection-index.js";

/** Services that every server using these helpers exposes alongside its own. */
const BUILT_IN_SERVICES: readonly DescService[] = [Health, ServerReflection, ServerReflectionV1Alpha];

/** Builds the index for `input`: the given services (or all services of the given files) + built-ins. */
export function createReflectionIndex(input: readonly DescFile[] | readonly DescService[]): ReflectionIndex {
  const services: DescService[] = [];
  const files: DescFile[] = [];
  for (const desc of input) {
    if (desc.kind === "service") services.push(desc);
    else {
      files.push(desc);
      services.push(...desc.services);
    }
  }
  return new ReflectionIndex([...services, ...BUILT_IN_SERVICES], files);
}

/** Answers one reflection request (v1 types). Never throws for a lookup miss. */
export function answerReflectionRequest(index: ReflectionIndex, request: ServerReflectionRequest): ServerReflectionResponse {
  const base = { validHost: request.host, originalRequest: request };
  const files = (file: DescFile | undefined, what: string): ServerReflectionResponse =>
    file === undefined
      ? errorResponse(base, Code.NotFound, `${what} not found`)
      : create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: {
            case: "fileDescriptorResponse",
            value: { fileDescriptorProto: index.descriptorsWithDependencies(file) },
          },
        });
  const req = request.messageRequest;
  switch (req.case) {
    case "listServices":
      return create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: {
          case: "listServicesResponse",
          value: { service: index.serviceNames.map((name) => ({ name })) },
        },
      });
    case "fileByFilename":
      return files(index.fileByName(req.value), `file ${JSON.stringify(req.value)}`);
    case "fileContainingSymbol":
      return files(index.fileBySymbol(req.value), `symbol ${JSON.stringify(req.value)}`);
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = req.value;
      const file = index.fileByExtension(containingType, extensionNumber);
      return files(file, `extension ${extensionNumber} of ${JSON.stringify(containingType)}`);
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbers(req.value);
      if (numbers === undefined) return errorResponse(base, Code.NotFound, `message type ${JSON.stringify(req.value)} not found`);
      return create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: req.value.startsWith(".") ? req.value.slice(1) : req.value, extensionNumber: numbers },
        },
      });
    }
    case undefined:
      return errorResponse(base, Code.InvalidArgument, "empty reflection request: set one of message_request");
  }
}

function errorResponse(base: { validHost: string; originalRequest: ServerReflectionRequest }, code: Code, message: string): ServerReflectionResponse {
  return create(ServerReflectionResponseSchema, {
    ...base,
    messageResponse: { case: "errorResponse", value: { errorCode: code, errorMessage: message } },
  });
}

/**
 * Mounts grpc.reflection.v1.ServerReflection and grpc.reflection.v1alpha.ServerReflection. The two
 * protocols are identical on the wire, so v1alpha messages are converted through their bytes.
 */
export function reflectionRoutes(input: readonly DescFile[] | readonly DescService[]): (router: ConnectRouter) => void {
  const index = createReflectionIndex(input);
  return (router) => {
    router.service(ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) yield answerReflectionRequest(index, request);
      },
    });
    router.service(ServerReflectionV1Alpha, {
      async *serverReflectionInfo(requests) {
        for await (const alpha of requests) {
          const request = fromBinary(ServerReflectionRequestSchema, toBinary(ServerReflectionRequestV1AlphaSchema, alpha));
          yield toV1Alpha(answerReflectionRequest(index, request));
        }
      },
    });
  };
}

function toV1Alpha(response: ServerReflectionResponse): ServerReflectionResponseV1Alpha {
  return fromBinary(ServerReflectionResponseV1AlphaSchema, toBinary(ServerReflectionResponseSchema, response));
}
