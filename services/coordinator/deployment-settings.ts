/**
 * What a deployment's podium.json sets for its instances, read from its materialized bundle: the
 * coordinator's limits with the deployment's `limits` applied (within the maxima), its network policy
 * and its on_busy policy. Errors are typed (DataLoss: unreadable; InvalidArgument: a bad field).
 */
import fs from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { applyManifestLimits, type InstanceLimits } from "./instance-limits.js";
import { DEFAULT_NETWORK_POLICY, NETWORK_POLICIES, type AgentNetworkPolicy } from "../registry/bundle-manifest.js";
import { BUSY_POLICIES, DEFAULT_BUSY_POLICY, isBusyPolicy, type BusyPolicy } from "../shared/busy-policy.js";
import { errorMessage } from "../shared/errors.js";

export interface DeploymentSettings {
  limits: InstanceLimits;
  network: AgentNetworkPolicy;
  onBusy: BusyPolicy;
}

export function readDeploymentSettings(bundleDir: string, base: InstanceLimits, maxima: InstanceLimits): DeploymentSettings {
  let manifest: { limits?: unknown; network?: unknown; on_busy?: unknown };
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(bundleDir, "podium.json"), "utf8")) as typeof manifest;
  } catch (err) {
    throw new ConnectError(`cannot read the bundle's podium.json: ${errorMessage(err)}`, Code.DataLoss);
  }
  const network = manifest.network ?? DEFAULT_NETWORK_POLICY;
  if (!NETWORK_POLICIES.includes(network as AgentNetworkPolicy)) {
    throw new ConnectError(`podium.json: "network" must be one of ${NETWORK_POLICIES.join(", ")}`, Code.InvalidArgument);
  }
  const onBusy = manifest.on_busy ?? DEFAULT_BUSY_POLICY;
  if (!isBusyPolicy(onBusy)) throw new ConnectError(`podium.json: "on_busy" must be one of ${BUSY_POLICIES.join(", ")}`, Code.InvalidArgument);
  try {
    return { limits: applyManifestLimits(base, manifest.limits, maxima), network: network as AgentNetworkPolicy, onBusy };
  } catch (err) {
    throw new ConnectError(errorMessage(err), Code.InvalidArgument);
  }
}
