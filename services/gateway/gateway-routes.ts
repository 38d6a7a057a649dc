/** Mounts the gateway's public services (gateway-handlers.ts) on the Connect router: Connect, gRPC and gRPC-Web. */
import type { ConnectRouter } from "@connectrpc/connect";
import type { GatewayCore } from "./gateway-core.js";
import { gatewayHandlers, type GatewayHandlers } from "./gateway-handlers.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { FileService } from "../../gen/podium/v1/file_service_pb.js";
import { DeploymentService } from "../../gen/podium/v1/deployment_service_pb.js";
import { ReplicationService } from "../../gen/podium/v1/replication_service_pb.js";

/** `handlers`: the ones REST and the WebSockets call too (made from `core` when not given). */
export function gatewayRoutes(core: GatewayCore, handlers: GatewayHandlers = gatewayHandlers(core)) {
  return (router: ConnectRouter) => {
    router.service(InstanceService, handlers.instance);
    router.service(FileService, handlers.file);
    router.service(ReplicationService, handlers.replication);
    router.service(DeploymentService, handlers.deployment);
  };
}
