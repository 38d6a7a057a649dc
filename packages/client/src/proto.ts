/**
 * `@podium-agents/client/proto`: the protobuf-es descriptors of Podium's public API (generated from
 * proto/podium/v1 into gen/ by `buf generate`), for a Connect, gRPC or gRPC-Web client:
 *
 *   import { createClient } from "@connectrpc/connect";
 *   import { createConnectTransport } from "@connectrpc/connect-node";
 *   import { InstanceService } from "@podium-agents/client/proto";
 *   const instances = createClient(InstanceService, createConnectTransport({ baseUrl, httpVersion: "1.1" }));
 *
 * The gateway serves InstanceService, FileService, DeploymentService, ReplicationService and
 * TranslatorService; CoordinatorService is the gateway's own link to its coordinators and is left out.
 */
export * from "../../../gen/podium/v1/instance_pb.js";
export * from "../../../gen/podium/v1/instance_service_pb.js";
export * from "../../../gen/podium/v1/agent_history_pb.js";
export * from "../../../gen/podium/v1/stream_update_pb.js";
export * from "../../../gen/podium/v1/file_service_pb.js";
export * from "../../../gen/podium/v1/deployment_service_pb.js";
export * from "../../../gen/podium/v1/replication_service_pb.js";
export * from "../../../gen/podium/v1/client_event_pb.js";
export * from "../../../gen/podium/v1/translator_service_pb.js";
