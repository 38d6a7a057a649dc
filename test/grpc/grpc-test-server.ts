/**
 * Test fixtures for test/grpc: a real connect-node server over h2c on port 0 serving health,
 * reflection and a trivial InstanceService, plus small grpc-js helpers (protobuf-es codecs, a
 * promise-based unary call and a pull-style stream reader).
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { InstanceSchema, InstanceStatus, Runtime } from "../../gen/podium/v1/instance_pb.js";
import { healthRoutes, type HealthStatusRegistry } from "../../services/shared/grpc-health.js";
import { reflectionRoutes } from "../../services/shared/grpc-reflection.js";

export { codec, unaryCall, StreamReader, type Codec } from "../helpers/grpc-js.js";

export const KNOWN_INSTANCE_ID = "inst-1";
export const KNOWN_CREATED_AT = new Date("2025-01-02T03:04:05Z");

export interface TestServer {
  readonly port: number;
  /** host:port for grpc-js. */
  readonly address: string;
  /** http://127.0.0.1:port for buf curl. */
  readonly url: string;
  close(): Promise<void>;
}

/** Health + reflection (advertising InstanceService) + an InstanceService that knows one instance. */
export function podiumTestRoutes(health: HealthStatusRegistry): (router: ConnectRouter) => void {
  return (router) => {
    healthRoutes(health)(router);
    reflectionRoutes([InstanceService])(router);
    router.service(InstanceService, {
      getInstance(request) {
        if (request.instanceId !== KNOWN_INSTANCE_ID) {
          throw new ConnectError(`instance ${request.instanceId} not found`, Code.NotFound);
        }
        const instance = create(InstanceSchema, {
          instanceId: KNOWN_INSTANCE_ID,
          agentId: "agent-1",
          deploymentId: "echo-ts:1.0.0@local",
          status: InstanceStatus.READY,
          runtime: Runtime.TYPESCRIPT,
          createdAt: timestampFromDate(KNOWN_CREATED_AT),
          pid: 4242,
        });
        return { instance };
      },
    });
  };
}

export async function startTestServer(routes: (router: ConnectRouter) => void): Promise<TestServer> {
  const server = http2.createServer(connectNodeAdapter({ routes }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    address: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.destroy();
      await closed;
    },
  };
}

export function insecureClient(server: TestServer): grpc.Client {
  return new grpc.Client(server.address, grpc.credentials.createInsecure());
}
