/** DeploymentRecord -> the generated podium.v1.Deployment message. */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { DeploymentSchema } from "../../gen/podium/v1/deployment_service_pb.js";
import type { Deployment } from "../../gen/podium/v1/deployment_service_pb.js";
import { Runtime } from "../../gen/podium/v1/instance_pb.js";
import type { DeploymentRecord } from "./deployment-registry.js";

export function deploymentToProto(record: DeploymentRecord): Deployment {
  return create(DeploymentSchema, {
    deploymentId: record.deploymentId,
    name: record.name,
    version: record.version,
    runtime: record.runtime === "python" ? Runtime.PYTHON : Runtime.TYPESCRIPT,
    entry: record.entry,
    digest: record.digest,
    size: BigInt(record.size),
    createdAt: timestampFromMs(record.createdAt),
    registry: record.registry,
  });
}
