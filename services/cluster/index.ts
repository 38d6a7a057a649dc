/** Public API of scale-out service discovery (Valkey): coordinator registration, the gateway directory, placement. */
export { CoordinatorRegistration, compileRegistrationOptions } from "./coordinator-registration.js";
export type { CoordinatorRegistrationOptions } from "./coordinator-registration.js";
export { ValkeyCoordinatorDirectory } from "./valkey-directory.js";
export type { ValkeyCoordinatorDirectoryOptions, ClosableCoordinatorClients, CoordinatorAddress, CoordinatorLostListener } from "./valkey-directory.js";
export type { CoordinatorMember, CoordinatorLostReason } from "./coordinator-membership.js";
export { grpcCoordinatorConnector } from "./grpc-coordinator-connector.js";
export type { GrpcCoordinatorConnectorOptions } from "./grpc-coordinator-connector.js";
export { createValkeyClient, closeValkey } from "./valkey-client.js";
export type { ValkeyClientOptions } from "./valkey-client.js";
export { ClusterKeys, DEFAULT_KEY_PREFIX } from "./cluster-keys.js";
export type { CoordinatorLoad, CoordinatorHeartbeat, MembershipEvent, InstanceLocation } from "./cluster-keys.js";
export { pickCoordinator, isPlaceable, placementLoad } from "./placement.js";
