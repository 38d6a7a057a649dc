/**
 * S3Registry against a real S3 API (s3rver on a free port): the same upload semantics as
 * LocalRegistry, the object layout, no second PUT for the same content, and Unavailable while S3 is
 * down (recovering by itself when it returns).
 */
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from "@jest/globals";
import * as fs from "node:fs";
import * as path from "node:path";
import { HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { Code } from "@connectrpc/connect";
import { startS3, type S3Server } from "../helpers/s3-server.js";
import { S3Registry } from "../../services/registry/s3-registry.js";
import { createS3Client } from "../../services/registry/s3-client.js";
import { packBundle, bundleDigest } from "../../services/registry/index.js";
import { expectConnectError, makeBundle, removeDir, tarFile, tarGz, tempDir, validEntries } from "./registry-test-utils.js";

let s3: S3Server;
let root: string;
let scratch: string;
let prefixCounter = 0;

beforeAll(async () => {
  s3 = await startS3();
});

afterAll(async () => {
  await s3.stop();
});

beforeEach(() => {
  root = tempDir();
  scratch = tempDir();
});

afterEach(() => {
  // Uploads extract into scratch and must leave nothing behind.
  expect(fs.readdirSync(scratch)).toEqual([]);
  removeDir(root);
  removeDir(scratch);
});

/** Counts PutObject calls made through a client. */
function countPuts(client: S3Client): string[] {
  const keys: string[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === "PutObjectCommand") {
        const input = args.input as { Key?: unknown };
        keys.push(String(input.Key));
      }
      return next(args);
    },
    { step: "initialize", name: `countPuts${++prefixCounter}` },
  );
  return keys;
}

function registry(options: { client?: S3Client; bucket?: string; createBucket?: boolean } = {}): S3Registry {
  return new S3Registry({
    client: options.client ?? s3.client,
    bucket: options.bucket ?? s3.bucket,
    prefix: `run${++prefixCounter}/deployments/`,
    scratchDir: scratch,
    ...(options.createBucket !== undefined ? { createBucket: options.createBucket } : {}),
  });
}

async function bundle(name: string, files: Record<string, string> = {}, manifest: Record<string, unknown> = {}): Promise<{ dir: string; archive: Buffer }> {
  const dir = makeBundle(path.join(root, name), files, manifest);
  return { dir, archive: await packBundle(dir) };
}

describe("S3Registry", () => {
  it("uploads, gets, lists and reads archives back, under <prefix><name>/<version>/", async () => {
    const reg = registry();
    const { dir, archive } = await bundle("echo");
    const { deployment, created } = await reg.upload(archive);
    expect(created).toBe(true);
    expect(deployment).toMatchObject({ deploymentId: "echo:1.0.0@s3", name: "echo", version: "1.0.0", runtime: "python", entry: "main.py", size: archive.length, registry: "s3" });
    expect(deployment.digest).toBe(await bundleDigest(dir));

    expect(await reg.get("echo:1.0.0@s3")).toEqual(deployment);
    expect(await reg.get("echo:1.0.0")).toEqual(deployment); // no suffix: this registry
    expect(await reg.get("echo:1.0.0@local")).toBeUndefined();
    expect(await reg.get("echo:2.0.0@s3")).toBeUndefined();
    expect(await reg.list()).toEqual([deployment]);
    expect((await reg.readArchive("echo:1.0.0@s3")).equals(archive)).toBe(true);

    const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${reg.prefix}echo/1.0.0/bundle.tar.gz` }));
    expect(head.Metadata?.digest).toBe(deployment.digest);
    const record = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${reg.prefix}echo/1.0.0/deployment.json` }));
    expect(record.Metadata?.digest).toBe(deployment.digest);
    expect(record.ContentType).toBe("application/json");
  });

  it("re-uploading the same content is a no-op: created false, no PutObject at all", async () => {
    const client = s3.newClient();
    const puts = countPuts(client);
    const reg = registry({ client });
    const { archive } = await bundle("echo");
    const first = await reg.upload(archive);
    expect(puts).toEqual([`${reg.prefix}echo/1.0.0/bundle.tar.gz`, `${reg.prefix}echo/1.0.0/deployment.json`]);
    const again = await reg.upload(archive);
    expect(again.created).toBe(false);
    expect(again.deployment).toEqual(first.deployment);
    expect(puts).toHaveLength(2);
  });

  it("a different bundle for the same name:version replaces it with a newer createdAt", async () => {
    const reg = registry();
    const one = await reg.upload((await bundle("v1")).archive);
    const two = await reg.upload((await bundle("v2", { "extra.py": "X = 2\n" })).archive);
    expect(two.created).toBe(true);
    expect(two.deployment.digest).not.toBe(one.deployment.digest);
    expect(two.deployment.createdAt).toBeGreaterThan(one.deployment.createdAt);
    expect(await reg.get("echo:1.0.0@s3")).toEqual(two.deployment);
    expect(await reg.list()).toHaveLength(1);
  });

  it("lists in natural version order across names", async () => {
    const reg = registry();
    for (const [name, version] of [
      ["zeta", "1.0.0"],
      ["echo", "1.10"],
      ["echo", "1.9"],
    ] as const) {
      await reg.upload((await bundle(`${name}-${version}`, {}, { name, version })).archive);
    }
    expect((await reg.list()).map((d) => d.deploymentId)).toEqual(["echo:1.9@s3", "echo:1.10@s3", "zeta:1.0.0@s3"]);
  });

  it("rejects a bad archive with InvalidArgument and writes nothing", async () => {
    const client = s3.newClient();
    const puts = countPuts(client);
    const reg = registry({ client });
    await expectConnectError(reg.upload(Buffer.from("not a tarball")), Code.InvalidArgument, "gzip");
    await expectConnectError(reg.upload(tarGz([tarFile("main.py", "print(1)\n")])), Code.InvalidArgument, "podium.json");
    await expectConnectError(reg.upload(tarGz([...validEntries(), tarFile("../escape.py", "x")])), Code.InvalidArgument, "'..'");
    expect(puts).toEqual([]);
    expect(await reg.list()).toEqual([]);
  });

  it("unknown deployments: get -> undefined, readArchive -> NotFound", async () => {
    const reg = registry();
    expect(await reg.get("nope:1.0.0@s3")).toBeUndefined();
    await expectConnectError(reg.readArchive("nope:1.0.0@s3"), Code.NotFound, "unknown deployment");
    await expectConnectError(reg.readArchive("nope:1.0.0@local"), Code.NotFound, 'not in registry "s3"');
  });

  it("an archive that does not match its record -> DataLoss; the next upload heals it", async () => {
    const reg = registry();
    const { archive } = await bundle("echo");
    await reg.upload(archive);
    const other = (await bundle("other", { "x.py": "1\n" })).archive;
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${reg.prefix}echo/1.0.0/bundle.tar.gz`, Body: other }));
    await expectConnectError(reg.readArchive("echo:1.0.0@s3"), Code.DataLoss, "does not match its record");
    const healed = await reg.upload(archive);
    expect(healed.created).toBe(true);
    expect((await reg.readArchive("echo:1.0.0@s3")).equals(archive)).toBe(true);
  });

  it("a missing bucket -> FailedPrecondition, or created on first upload with createBucket", async () => {
    const { archive } = await bundle("echo");
    await expectConnectError(registry({ bucket: "no-such-bucket" }).upload(archive), Code.FailedPrecondition, "does not exist");
    const reg = registry({ bucket: `made-${prefixCounter}`, createBucket: true });
    expect((await reg.upload(archive)).created).toBe(true);
    expect(await reg.get("echo:1.0.0@s3")).toBeDefined();
  });

  it("S3 down -> Unavailable for every operation; back -> works again without a new client", async () => {
    const reg = registry({ client: s3.newClient({ maxAttempts: 1 }) });
    const { archive } = await bundle("echo");
    await reg.upload(archive);
    await s3.pause();
    try {
      const started = Date.now();
      const error = await expectConnectError(reg.upload(archive), Code.Unavailable, "S3 is unavailable");
      console.log(`S3 down: upload -> Unavailable in ${Date.now() - started} ms ("${error.rawMessage}")`);
      await expectConnectError(reg.get("echo:1.0.0@s3"), Code.Unavailable);
      await expectConnectError(reg.list(), Code.Unavailable);
      await expectConnectError(reg.readArchive("echo:1.0.0@s3"), Code.Unavailable);
    } finally {
      await s3.resume();
    }
    expect((await reg.readArchive("echo:1.0.0@s3")).equals(archive)).toBe(true);
    expect((await reg.upload(archive)).created).toBe(false);
  });

  it("works with the client main.ts builds (createS3Client) against a custom endpoint", async () => {
    const client = createS3Client({ endpoint: s3.endpoint, region: "eu-west-1", credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } });
    try {
      const reg = registry({ client });
      const { archive } = await bundle("echo");
      expect((await reg.upload(archive)).created).toBe(true);
      expect((await reg.readArchive("echo:1.0.0")).equals(archive)).toBe(true);
    } finally {
      client.destroy();
    }
  });
});
