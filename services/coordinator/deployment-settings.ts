/**
 * What a deployment's podium.json sets for its instances, read from its materialized bundle: the
 * coordinator's limits with the deployment's `limits` applied (within the maxima), its network policy
 * its on_busy policy and its crons. Errors are typed (DataLoss: unreadable; InvalidArgument: a bad
 * field). And the deployment records a coordinator starts instances from (DeploymentLookup).
 */
import fs from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { applyManifestLimits, type InstanceLimits } from "./instance-limits.js";
import { parseBundleManifest, type AgentNetworkPolicy } from "../registry/bundle-manifest.js";
import type { BusyPolicy } from "../shared/busy-policy.js";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { resolveDeploymentId, type DeploymentRecord, type DeploymentRegistry } from "../registry/deployment-registry.js";
import { parseDeclaredSchedules } from "../shared/schedule-when.js";
import type { DeclaredSchedule } from "./schedule-runner.js";

export interface DeploymentSettings {
  limits: InstanceLimits;
  network: AgentNetworkPolicy;
  onBusy: BusyPolicy;
  /** Crons every instance gets (podium.json `schedules`). */
  schedules: DeclaredSchedule[];
}

export function readDeploymentSettings(bundleDir: string, base: InstanceLimits, maxima: InstanceLimits): DeploymentSettings {
  let json: { limits?: unknown; schedules?: unknown };
  try {
    json = JSON.parse(fs.readFileSync(path.join(bundleDir, "podium.json"), "utf8")) as typeof json;
  } catch (err) {
    throw new ConnectError(`cannot read the bundle's podium.json: ${errorMessage(err)}`, Code.DataLoss);
  }
  // The fields checked at deploy are read through the same parser (limits need this coordinator's maxima).
  const { network, onBusy } = parseBundleManifest(json);
  const schedules = parseDeclaredSchedules(json.schedules);
  try {
    return { limits: applyManifestLimits(base, json.limits, maxima), network, onBusy, schedules };
  } catch (err) {
    throw new ConnectError(errorMessage(err), Code.InvalidArgument);
  }
}

/** Reads deployment records: one registry read shared by a burst of creates, the last one kept for outages. */
export class DeploymentLookup {
  /** The last record read for each deployment id (used while the registry is unreachable). */
  private readonly known = new Map<string, DeploymentRecord>();
  /** Registry reads in flight, shared by the creates that want the same deployment meanwhile. */
  private readonly reads = new Map<string, Promise<DeploymentRecord | undefined>>();

  constructor(
    private readonly registry: DeploymentRegistry,
    private readonly logger: Logger,
  ) {}

  async resolve(deploymentId: string): Promise<DeploymentRecord> {
    const { id, foreign } = resolveDeploymentId(deploymentId, this.registry.name);
    if (foreign) throw new ConnectError(`deployment ${id}: this coordinator reads registry "${this.registry.name}"`, Code.NotFound);
    let record: DeploymentRecord | undefined;
    try {
      let read = this.reads.get(id);
      if (!read) {
        read = this.registry.get(id).finally(() => this.reads.delete(id));
        this.reads.set(id, read);
      }
      record = await read;
    } catch (err) {
      // The registry (S3) is briefly unreachable: a deployment seen before still starts.
      const known = this.known.get(id);
      if (!known || ConnectError.from(err).code !== Code.Unavailable) throw err;
      this.logger.warn(`registry unavailable; starting ${id} from the last known record`, { deployment_id: id });
      return known;
    }
    if (!record) throw new ConnectError(`unknown deployment ${id}; upload it first (podium deploy DIR)`, Code.NotFound);
    this.known.set(id, record);
    return record;
  }
}
