/**
 * The production `connect` for the directory: gRPC over HTTP/2 to a coordinator's advertised address
 * with the cluster secret, found through a real redis-server; clients are closed when the
 * coordinator leaves.
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { startRedis, type RedisServer } from "../helpers/redis-server.js";
import { startTestServer, type TestServer } from "../grpc/grpc-test-server.js";
import { CoordinatorRegistration } from "../../services/cluster/coordinator-registration.js";
import { ValkeyCoordinatorDirectory } from "../../services/cluster/valkey-directory.js";
import { grpcCoordinatorConnector } from "../../services/cluster/grpc-coordinator-connector.js";
import { CoordinatorService } from "../../gen/podium/v1/coordinator_service_pb.js";
import { waitFor } from "./cluster-test-utils.js";

const SECRET = "cluster-secret-123";

function coordinatorRoutes(id: string) {
  return (router: ConnectRouter) => {
    router.service(CoordinatorService, {
      async getCoordinatorInfo(_req, ctx) {
        if (ctx.requestHeader.get("authorization") !== `Bearer ${SECRET}`) throw new ConnectError("cluster secret required", Code.Unauthenticated);
        return { info: { coordinatorId: id, capacity: 10 } };
      },
    });
  };
}

const withSecret: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${SECRET}`);
  return next(req);
};

describe("grpcCoordinatorConnector", () => {
  let redis: RedisServer;
  let server: TestServer;

  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer(coordinatorRoutes("coord-g"));
  });

  afterAll(async () => {
    await server.close();
    await redis.stop();
  });

  it("reaches a registered coordinator over gRPC with the cluster secret", async () => {
    const registration = new CoordinatorRegistration({
      redis: redis.url,
      coordinatorId: "coord-g",
      address: server.url,
      info: () => ({ instances: 0, capacity: 10, cpuLoad: 0, memoryBytes: 0, draining: false }),
    });
    const directory = new ValkeyCoordinatorDirectory({ redis: redis.url, connect: grpcCoordinatorConnector({ interceptors: [withSecret] }) });
    const unauthenticated = new ValkeyCoordinatorDirectory({ redis: redis.url, connect: grpcCoordinatorConnector() });
    try {
      await registration.start();
      await waitFor(() => directory.members().length === 1 && unauthenticated.members().length === 1, "coord-g");
      const coordinator = await directory.place();
      const { info } = await coordinator.control.getCoordinatorInfo({});
      expect(info?.coordinatorId).toBe("coord-g");
      const denied = await (await unauthenticated.place()).control.getCoordinatorInfo({}).catch((e: unknown) => ConnectError.from(e));
      expect(denied).toBeInstanceOf(ConnectError);
      expect((denied as ConnectError).code).toBe(Code.Unauthenticated);
      await registration.stop();
      await waitFor(() => directory.members().length === 0, "coord-g to leave");
    } finally {
      await registration.stop();
      await directory.close();
      await unauthenticated.close();
    }
  });
});
