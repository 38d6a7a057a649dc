import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import * as fs from "node:fs";
import * as path from "node:path";
import { Code } from "@connectrpc/connect";
import * as tar from "tar";
import { Runtime } from "../../gen/podium/v1/instance_pb.js";
import { LocalRegistry, bundleDigest, deploymentToProto, packBundle } from "../../services/registry/index.js";
import { expectConnectError, listTree, makeBundle, removeDir, tarFile, tarGz, tempDir, validEntries } from "./registry-test-utils.js";

let root: string;
let registryDir: string;
let registry: LocalRegistry;
let bundles = 0;

beforeEach(() => {
  root = tempDir();
  registryDir = path.join(root, "registry");
  registry = new LocalRegistry({ dir: registryDir });
});
afterEach(() => {
  removeDir(root);
});

/** Packs a fresh bundle directory with the given main.py content and manifest fields. */
async function bundle(main = "print('v1')\n", manifest: Record<string, unknown> = {}): Promise<{ archive: Buffer; dir: string }> {
  const dir = makeBundle(path.join(root, `bundle-${++bundles}`), { "main.py": main }, manifest);
  return { archive: await packBundle(dir), dir };
}

describe("LocalRegistry", () => {
  it("uploads, gets, lists and reads back a deployment", async () => {
    const { archive, dir } = await bundle();
    const before = Date.now();
    const { deployment, created } = await registry.upload(archive);
    expect(created).toBe(true);
    expect(deployment).toEqual({
      deploymentId: "echo:1.0.0@local",
      name: "echo",
      version: "1.0.0",
      runtime: "python",
      entry: "main.py",
      digest: await bundleDigest(dir),
      size: archive.length,
      createdAt: expect.any(Number),
      registry: "local",
    });
    expect(deployment.createdAt).toBeGreaterThanOrEqual(before);
    expect(await registry.get("echo:1.0.0@local")).toEqual(deployment);
    expect(await registry.get("echo:1.0.0")).toEqual(deployment);
    expect(await registry.get("echo:2.0.0@local")).toBeUndefined();
    expect(await registry.get("echo:1.0.0@s3")).toBeUndefined();
    await expectConnectError(registry.get("not an id"), Code.InvalidArgument);
    expect(await registry.list()).toEqual([deployment]);
    expect((await registry.readArchive("echo:1.0.0@local")).equals(archive)).toBe(true);
    await expectConnectError(registry.readArchive("echo:9.9.9@local"), Code.NotFound);
    await expectConnectError(registry.readArchive("echo:1.0.0@s3"), Code.NotFound);
    // layout on disk, no temp files left
    expect(listTree(registryDir)).toEqual([".tmp", "echo", "echo/1.0.0", "echo/1.0.0/bundle.tar.gz", "echo/1.0.0/deployment.json"]);
    // a second registry object on the same directory sees it (state is on disk)
    expect(await new LocalRegistry({ dir: registryDir }).get("echo:1.0.0")).toEqual(deployment);
  });

  it("converts records to the proto message", async () => {
    const dir = makeBundle(path.join(root, "ts"), { "main.ts": "export default {};\n" }, { runtime: "typescript", entry: "main.ts" });
    const { deployment } = await registry.upload(await packBundle(dir));
    const proto = deploymentToProto(deployment);
    expect(proto.deploymentId).toBe("echo:1.0.0@local");
    expect(proto.runtime).toBe(Runtime.TYPESCRIPT);
    expect(proto.size).toBe(BigInt(deployment.size));
    expect(Number(proto.createdAt?.seconds) * 1000 + Math.floor((proto.createdAt?.nanos ?? 0) / 1e6)).toBe(deployment.createdAt);
    expect(proto.digest).toBe(deployment.digest);
    expect(deploymentToProto({ ...deployment, runtime: "python" }).runtime).toBe(Runtime.PYTHON);
  });

  it("treats the same content as a no-op, even from a differently made archive", async () => {
    const { archive, dir } = await bundle();
    const first = await registry.upload(archive);
    const again = await registry.upload(archive);
    expect(again).toEqual({ deployment: first.deployment, created: false });
    // same files, different archive bytes (real mtimes, directory entries, wrapping folder)
    const other = await tar.create({ gzip: true, cwd: path.dirname(dir), portable: false }, [path.basename(dir)]).concat();
    expect(other.equals(archive)).toBe(false);
    const third = await registry.upload(other);
    expect(third.created).toBe(false);
    expect(third.deployment).toEqual(first.deployment);
    expect((await registry.readArchive("echo:1.0.0")).equals(archive)).toBe(true);
  });

  it("replaces different content under the same name:version", async () => {
    const v1 = await registry.upload((await bundle("print('v1')\n")).archive);
    const replacement = await bundle("print('v2')\n");
    const v2 = await registry.upload(replacement.archive);
    expect(v2.created).toBe(true);
    expect(v2.deployment.digest).not.toBe(v1.deployment.digest);
    expect(v2.deployment.createdAt).toBeGreaterThan(v1.deployment.createdAt);
    expect(await registry.get("echo:1.0.0")).toEqual(v2.deployment);
    expect((await registry.readArchive("echo:1.0.0")).equals(replacement.archive)).toBe(true);
    expect(await registry.list()).toHaveLength(1);
  });

  it("serializes concurrent uploads of one id and keeps record and archive consistent", async () => {
    const contents = await Promise.all(Array.from({ length: 6 }, (_, i) => bundle(`print(${i})\n`)));
    const results = await Promise.all(contents.map((c) => registry.upload(c.archive)));
    expect(results.every((r) => r.created)).toBe(true);
    const createdAts = results.map((r) => r.deployment.createdAt);
    expect(new Set(createdAts).size).toBe(createdAts.length);
    const final = await registry.get("echo:1.0.0");
    const winner = results.find((r) => r.deployment.createdAt === Math.max(...createdAts));
    expect(final).toEqual(winner?.deployment);
    const stored = await registry.readArchive("echo:1.0.0");
    const index = contents.findIndex((c) => c.archive.equals(stored));
    expect(results[index]?.deployment).toEqual(final);

    // the same content uploaded concurrently is created exactly once
    const same = (await bundle("print('same')\n", { version: "2.0.0" })).archive;
    const sameResults = await Promise.all([1, 2, 3, 4].map(() => registry.upload(same)));
    expect(sameResults.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(sameResults.map((r) => r.deployment.createdAt)).size).toBe(1);
    expect(listTree(path.join(registryDir, "echo/1.0.0"))).toEqual(["bundle.tar.gz", "deployment.json"]);
    expect(fs.readdirSync(path.join(registryDir, ".tmp"))).toEqual([]);
  });

  it("lists by name then version in natural order", async () => {
    for (const [name, version] of [
      ["zeta", "1.0.0"],
      ["alpha", "1.10.0"],
      ["alpha", "1.9.0"],
      ["alpha", "1.9.0-rc1"],
      ["beta", "0.1"],
    ] as const) {
      await registry.upload((await bundle(`print('${name} ${version}')\n`, { name, version })).archive);
    }
    expect((await registry.list()).map((d) => d.deploymentId)).toEqual(["alpha:1.9.0@local", "alpha:1.9.0-rc1@local", "alpha:1.10.0@local", "beta:0.1@local", "zeta:1.0.0@local"]);
  });

  it("rejects invalid bundles without storing anything", async () => {
    await expectConnectError(registry.upload(Buffer.from("nope")), Code.InvalidArgument, "gzip");
    await expectConnectError(registry.upload(tarGz([...validEntries(), tarFile("../x", "x")])), Code.InvalidArgument, "'..'");
    const small = new LocalRegistry({ dir: registryDir, limits: { maxFiles: 2 } });
    await expectConnectError(small.upload(tarGz([...validEntries(), tarFile("extra.py", "x")])), Code.InvalidArgument, "entries");
    expect(await registry.list()).toEqual([]);
    expect(listTree(registryDir)).toEqual([".tmp"]);
    const controller = new AbortController();
    controller.abort();
    await expectConnectError(registry.upload((await bundle()).archive, controller.signal), Code.Canceled);
    expect(await registry.list()).toEqual([]);
  });

  it("uses its own name in ids and detects an archive that does not match its record", async () => {
    const named = new LocalRegistry({ dir: registryDir, name: "edge" });
    const { deployment } = await named.upload((await bundle()).archive);
    expect(deployment.deploymentId).toBe("echo:1.0.0@edge");
    expect(await named.get("echo:1.0.0")).toEqual(deployment);
    expect(await named.get("echo:1.0.0@local")).toBeUndefined();
    expect(() => new LocalRegistry({ dir: registryDir, name: "Bad Name" })).toThrow(RangeError);

    // as if a crash happened between writing the archive and the record
    const other = await bundle("print('other')\n");
    fs.writeFileSync(path.join(registryDir, "echo/1.0.0/bundle.tar.gz"), other.archive);
    await expectConnectError(named.readArchive("echo:1.0.0"), Code.DataLoss, "upload it again");
    fs.writeFileSync(path.join(registryDir, "echo/1.0.0/deployment.json"), "{ broken");
    await expectConnectError(named.get("echo:1.0.0"), Code.DataLoss, "corrupt");
  });

  it("heals an interrupted replace on the next upload of the recorded content", async () => {
    const v1 = await bundle("print('v1')\n");
    const first = await registry.upload(v1.archive);
    fs.writeFileSync(path.join(registryDir, "echo/1.0.0/bundle.tar.gz"), (await bundle("print('v2')\n")).archive);
    const healed = await registry.upload(v1.archive);
    expect(healed.created).toBe(true);
    expect(healed.deployment.digest).toBe(first.deployment.digest);
    expect((await registry.readArchive("echo:1.0.0")).equals(v1.archive)).toBe(true);
  });
});
