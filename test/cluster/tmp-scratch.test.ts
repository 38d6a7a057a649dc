import { it } from "@jest/globals";
import { startRedis } from "../helpers/redis-server.js";
import { CoordinatorRegistration } from "../../services/cluster/coordinator-registration.js";
import { ValkeyCoordinatorDirectory } from "../../services/cluster/valkey-directory.js";
import { fakeCoordinator, routerConnector, sleep } from "./cluster-test-utils.js";

it("closes while valkey is down", async () => {
  const redis = await startRedis();
  const fakes = new Map([["coord-a", fakeCoordinator("coord-a")]]);
  const directory = new ValkeyCoordinatorDirectory({ redis: redis.url, connect: routerConnector(fakes).connect });
  const r = new CoordinatorRegistration({ redis: redis.url, coordinatorId: "coord-a", address: "http://a:1", info: () => fakes.get("coord-a")!.load() });
  await r.start();
  await directory.ready();
  await redis.pause();
  await sleep(100); await directory.place().catch(() => undefined);
  await r.stop();
  await directory.close();
  await redis.stop();
});
