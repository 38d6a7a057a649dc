import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import * as fs from "node:fs";
import * as path from "node:path";
import { Code } from "@connectrpc/connect";
import { BundleCache, LocalRegistry, bundleDigest, packBundle } from "../../services/registry/index.js";
import type { DeploymentRecord, DeploymentRegistry, UploadResult } from "../../services/registry/index.js";
import { expectConnectError, listTree, makeBundle, removeDir, tempDir } from "./registry-test-utils.js";

/** A registry that counts archive reads and can hold them until released. */
class CountingRegistry implements DeploymentRegistry {
  readonly name = "local";
  reads = 0;
  private gate: Promise<void> = Promise.resolve();
  private release: () => void = () => {};
  constructor(private readonly inner: DeploymentRegistry) {}
  hold(): void {
    this.gate = new Promise((resolve) => (this.release = resolve));
  }
  open(): void {
    this.release();
  }
  upload(archive: Buffer, signal?: AbortSignal): Promise<UploadResult> {
    return this.inner.upload(archive, signal);
  }
  get(id: string): Promise<DeploymentRecord | undefined> {
    return this.inner.get(id);
  }
  list(): Promise<DeploymentRecord[]> {
    return this.inner.list();
  }
  async readArchive(id: string, signal?: AbortSignal): Promise<Buffer> {
    this.reads++;
    await this.gate;
    return this.inner.readArchive(id, signal);
  }
}

let root: string;
let registry: CountingRegistry;
let cache: BundleCache;
let source: string;
let deployment: DeploymentRecord;

beforeEach(async () => {
  root = tempDir();
  registry = new CountingRegistry(new LocalRegistry({ dir: path.join(root, "registry") }));
  cache = new BundleCache({ dir: path.join(root, "cache"), registry });
  source = makeBundle(path.join(root, "src"), { "lib/util.py": "X = 1\n", "run.sh": { content: "#!/bin/sh\n", mode: 0o755 } });
  ({ deployment } = await registry.upload(await packBundle(source)));
});
afterEach(() => {
  removeDir(root);
});

describe("BundleCache", () => {
  it("extracts once for concurrent materialize calls and reuses the directory afterwards", async () => {
    registry.hold();
    const pending = [cache.materialize(deployment), cache.materialize(deployment)];
    registry.open();
    const [a, b] = await Promise.all(pending);
    expect(a).toBe(b);
    expect(a).toBe(path.join(root, "cache", deployment.digest.slice("sha256:".length)));
    expect(registry.reads).toBe(1);
    expect(await bundleDigest(a ?? "")).toBe(deployment.digest);
    expect(listTree(a ?? "")).toEqual(["lib", "lib/util.py", "main.py", "podium.json", "run.sh"]);
    expect(fs.statSync(path.join(a ?? "", "run.sh")).mode & 0o111).not.toBe(0);

    expect(await cache.materialize(deployment)).toBe(a);
    expect(registry.reads).toBe(1);
    // a fresh cache object on the same directory finds it on disk
    const again = new BundleCache({ dir: path.join(root, "cache"), registry });
    expect(await again.materialize(deployment)).toBe(a);
    expect(registry.reads).toBe(1);
    expect(fs.readdirSync(path.join(root, "cache"))).toEqual([path.basename(a ?? "")]);
  });

  it("fails with DataLoss when the registry's archive does not have the recorded digest", async () => {
    const wrong = { ...deployment, digest: `sha256:${"0".repeat(64)}` };
    await expectConnectError(cache.materialize(wrong), Code.DataLoss, "expected");
    // replaced since the record was read: same id, other content
    makeBundle(source, { "main.py": "print('v2')\n" });
    await registry.upload(await packBundle(source));
    await expectConnectError(cache.materialize(deployment), Code.DataLoss, deployment.digest);
    expect(fs.readdirSync(path.join(root, "cache"))).toEqual([]);
  });

  it("rejects a malformed digest and honours cancellation", async () => {
    await expectConnectError(cache.materialize({ ...deployment, digest: "md5:abc" }), Code.InvalidArgument);
    registry.hold();
    const controller = new AbortController();
    const pending = cache.materialize(deployment, controller.signal);
    controller.abort();
    await expectConnectError(pending, Code.Canceled);
    registry.open();
    // the abandoned extraction is cancelled; a later call starts a new one
    const dir = await cache.materialize(deployment);
    expect(registry.reads).toBe(2);
    expect(await bundleDigest(dir)).toBe(deployment.digest);
    expect(fs.readdirSync(path.join(root, "cache"))).toEqual([path.basename(dir)]);
  });
});
