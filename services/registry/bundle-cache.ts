/**
 * Coordinator-side cache of extracted bundles: <dir>/<digest-hex>/ holds a deployment's files, shared
 * by every instance of that content. Extraction goes to a temp dir that is renamed into place only
 * after its digest checks out, so a directory named after a digest always holds exactly that content.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { extractBundle } from "./bundle-extract.js";
import { raceAbort, throwIfAborted } from "./cancel.js";
import type { DeploymentRecord, DeploymentRegistry } from "./deployment-registry.js";

export interface BundleCacheOptions {
  /** Cache root (created on demand). */
  dir: string;
  registry: DeploymentRegistry;
  /** Extraction limits (defaults: 10,000 entries, 512 MiB). */
  limits?: { maxFiles?: number; maxBytes?: number };
}

interface Extraction {
  promise: Promise<string>;
  waiters: number;
  controller: AbortController;
}

const DIGEST_PATTERN = /^sha256:([0-9a-f]{64})$/;

/** A stat of the cache's own local directory: synchronous, as a thread-pool round trip costs more than the call (~1 ms on a create's path). */
function isDirectory(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

export class BundleCache {
  private readonly dir: string;
  private readonly registry: DeploymentRegistry;
  private readonly limits: { maxFiles?: number; maxBytes?: number };
  private readonly inflight = new Map<string, Extraction>();

  constructor(options: BundleCacheOptions) {
    this.dir = path.resolve(options.dir);
    this.registry = options.registry;
    this.limits = options.limits ?? {};
  }

  /**
   * Returns the directory holding the deployment's files, extracting them on first use. Concurrent
   * calls for one digest share one extraction; it is cancelled only when every caller has aborted.
   * Throws DataLoss when the registry's archive does not have `deployment.digest`.
   */
  async materialize(deployment: DeploymentRecord, signal?: AbortSignal): Promise<string> {
    const match = DIGEST_PATTERN.exec(deployment.digest);
    const hex = match?.[1];
    if (!hex) throw new ConnectError(`deployment ${deployment.deploymentId}: malformed digest ${JSON.stringify(deployment.digest)}`, Code.InvalidArgument);
    throwIfAborted(signal, "bundle materialization");
    const target = path.join(this.dir, hex);
    if (isDirectory(target)) return target;

    let extraction = this.inflight.get(hex);
    if (!extraction) {
      const controller = new AbortController();
      const promise = this.extract(deployment, hex, target, controller.signal);
      const created: Extraction = { promise, waiters: 0, controller };
      extraction = created;
      this.inflight.set(hex, created);
      promise.then(
        () => this.forget(hex, created),
        () => this.forget(hex, created),
      );
    }
    const shared = extraction;
    shared.waiters++;
    try {
      return await raceAbort(shared.promise, signal, "bundle materialization");
    } finally {
      if (--shared.waiters === 0 && this.inflight.get(hex) === shared) {
        // nobody is waiting any more: stop the work (a no-op if it already finished)
        this.forget(hex, shared);
        shared.controller.abort();
      }
    }
  }

  private forget(hex: string, extraction: Extraction): void {
    if (this.inflight.get(hex) === extraction) this.inflight.delete(hex);
  }

  private async extract(deployment: DeploymentRecord, hex: string, target: string, signal: AbortSignal): Promise<string> {
    const archive = await this.registry.readArchive(deployment.deploymentId, signal);
    await fsp.mkdir(this.dir, { recursive: true });
    const temp = path.join(this.dir, `.tmp-${hex.slice(0, 12)}-${randomBytes(6).toString("hex")}`);
    try {
      let digest: string;
      try {
        ({ digest } = await extractBundle(archive, temp, { ...this.limits, signal }));
      } catch (error) {
        if (error instanceof ConnectError && error.code === Code.InvalidArgument) {
          throw new ConnectError(`deployment ${deployment.deploymentId}: the stored archive is invalid: ${error.rawMessage}`, Code.DataLoss);
        }
        throw error;
      }
      if (digest !== deployment.digest) {
        throw new ConnectError(`deployment ${deployment.deploymentId}: the registry's archive has digest ${digest}, expected ${deployment.digest} (replaced or corrupt)`, Code.DataLoss);
      }
      try {
        await fsp.rename(temp, target);
      } catch (error) {
        // another process materialized the same digest first; its copy is as good as ours
        if (!isDirectory(target)) throw error;
      }
      return target;
    } finally {
      await fsp.rm(temp, { recursive: true, force: true });
    }
  }
}
