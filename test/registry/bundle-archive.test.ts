import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { Code } from "@connectrpc/connect";
import * as tar from "tar";
import { bundleDigest, extractBundle, packBundle } from "../../services/registry/index.js";
import { expectConnectError, listTree, makeBundle, manifestJson, removeDir, tarEntry, tarFile, tarGz, tempDir, validEntries, writeFiles } from "./registry-test-utils.js";

let root: string;
beforeEach(() => {
  root = tempDir();
});
afterEach(() => {
  removeDir(root);
});

const longPath = `deep/${"d".repeat(90)}/${"e".repeat(90)}/${"f".repeat(60)}/module.py`;

function sourceBundle(): string {
  return makeBundle(path.join(root, "src"), {
    "lib/util.py": "X = 1\n",
    "bin/run.sh": { content: "#!/bin/sh\necho hi\n", mode: 0o755 },
    "data/empty.txt": "",
    "data/blob.bin": Buffer.alloc(200_000, 7),
    "naïve/ünïcode.py": "# unicode path\n",
    [longPath]: "# long path\n",
    "node_modules/left-pad/index.js": "module.exports = 1;\n",
    ".git/HEAD": "ref: refs/heads/main\n",
    "lib/__pycache__/util.cpython-312.pyc": "junk",
    ".DS_Store": "junk",
    "lib/.DS_Store": "junk",
  });
}

const expectedFiles = ["bin/run.sh", "data/blob.bin", "data/empty.txt", longPath, "lib/util.py", "main.py", "naïve/ünïcode.py", "podium.json"];

function filesOf(dir: string): string[] {
  return listTree(dir).filter((p) => fs.statSync(path.join(dir, p)).isFile());
}

describe("packBundle / extractBundle", () => {
  it("round-trips with an identical digest, keeps the executable bit and skips junk dirs", async () => {
    const src = sourceBundle();
    const progress: number[] = [];
    const archive = await packBundle(src, { onProgress: (bytes) => progress.push(bytes) });
    const dest = path.join(root, "out");
    const result = await extractBundle(archive, dest);

    expect(result.manifest).toEqual({ name: "echo", version: "1.0.0", runtime: "python", entry: "main.py", network: "egress", onBusy: "enqueue" });
    expect(result.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(result.digest).toBe(await bundleDigest(src));
    expect(result.digest).toBe(await bundleDigest(dest));
    expect(filesOf(dest).sort()).toEqual([...expectedFiles].sort());
    expect(result.files).toBe(expectedFiles.length);
    expect(result.bytes).toBe(expectedFiles.reduce((sum, f) => sum + fs.statSync(path.join(src, f)).size, 0));
    expect(fs.readFileSync(path.join(dest, "data/blob.bin")).equals(Buffer.alloc(200_000, 7))).toBe(true);
    expect(fs.readFileSync(path.join(dest, longPath), "utf8")).toBe("# long path\n");
    expect(fs.statSync(path.join(dest, "bin/run.sh")).mode & 0o111).not.toBe(0);
    expect(fs.statSync(path.join(dest, "main.py")).mode & 0o111).toBe(0);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[progress.length - 1]).toBe(result.bytes);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
  });

  it("packs deterministically: same bytes twice, after touching mtimes and modes, and from a copy", async () => {
    const src = sourceBundle();
    const first = await packBundle(src);
    expect((await packBundle(src)).equals(first)).toBe(true);

    fs.utimesSync(path.join(src, "main.py"), new Date(2001, 1, 1), new Date(2001, 1, 1));
    fs.chmodSync(path.join(src, "lib/util.py"), 0o600);
    fs.chmodSync(path.join(src, "bin/run.sh"), 0o700);
    expect((await packBundle(src)).equals(first)).toBe(true);

    const copy = path.join(root, "copy");
    fs.cpSync(src, copy, { recursive: true });
    expect((await packBundle(copy)).equals(first)).toBe(true);

    // the archive carries normalized metadata only
    const seen: { path: string; mode?: number; uid?: number; mtime?: Date; uname?: string }[] = [];
    await new Promise<void>((resolve, reject) => {
      const parser = new tar.Parser({
        onReadEntry: (e) => {
          seen.push({ path: e.path, mode: e.mode, uid: e.uid, mtime: e.mtime, uname: e.uname });
          e.resume();
        },
      });
      parser.on("end", resolve);
      parser.on("error", reject);
      parser.end(first);
    });
    expect(seen.map((e) => e.path)).toEqual([...expectedFiles].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    expect(new Set(seen.map((e) => e.mode))).toEqual(new Set([0o644, 0o755]));
    expect(seen.every((e) => e.uid === 0 && !e.uname && e.mtime?.getTime() === seen[0]?.mtime?.getTime())).toBe(true);
  });

  it("gives the same digest for the same content in a differently made archive (with a wrapping folder)", async () => {
    const src = sourceBundle();
    const packed = await extractBundle(await packBundle(src), path.join(root, "a"));
    // `tar czf x.tgz my-agent/` style: real mtimes, owners, directory entries, one top-level folder
    const parent = path.join(root, "parent");
    fs.mkdirSync(parent);
    fs.cpSync(src, path.join(parent, "my-agent"), { recursive: true });
    fs.rmSync(path.join(parent, "my-agent/node_modules"), { recursive: true });
    const other = await tar.create({ gzip: true, cwd: parent, sync: false }, ["my-agent"]).concat();
    const dest = path.join(root, "b");
    const result = await extractBundle(other, dest);
    expect(result.digest).toBe(packed.digest);
    expect(filesOf(dest).sort()).toEqual([...expectedFiles].sort());
  });

  it("follows symlinks inside the bundle and refuses ones pointing outside", async () => {
    const src = makeBundle(path.join(root, "src"), { "lib/real.py": "R = 1\n" });
    fs.symlinkSync("real.py", path.join(src, "lib/alias.py"));
    const result = await extractBundle(await packBundle(src), path.join(root, "out"));
    expect(fs.readFileSync(path.join(root, "out/lib/alias.py"), "utf8")).toBe("R = 1\n");
    expect(fs.lstatSync(path.join(root, "out/lib/alias.py")).isFile()).toBe(true);
    expect(result.digest).toBe(await bundleDigest(src));

    fs.writeFileSync(path.join(root, "secret.txt"), "secret");
    fs.symlinkSync(path.join(root, "secret.txt"), path.join(src, "leak.txt"));
    await expectConnectError(packBundle(src), Code.InvalidArgument, "outside the bundle");
    fs.rmSync(path.join(src, "leak.txt"));
    fs.symlinkSync("..", path.join(src, "lib/up"));
    await expectConnectError(packBundle(src), Code.InvalidArgument, "symlink cycle");
  });

  it("refuses to pack a directory without a valid podium.json or entry file", async () => {
    const noManifest = writeFiles(path.join(root, "a"), { "main.py": "" });
    await expectConnectError(packBundle(noManifest), Code.InvalidArgument, "podium.json");
    const badJson = writeFiles(path.join(root, "b"), { "podium.json": "{nope", "main.py": "" });
    await expectConnectError(packBundle(badJson), Code.InvalidArgument, "not valid JSON");
    const noEntry = writeFiles(path.join(root, "c"), { "podium.json": manifestJson({ entry: "agent.py" }) });
    await expectConnectError(packBundle(noEntry), Code.InvalidArgument, '"entry"');
  });
});

describe("extractBundle refuses bad archives and leaves nothing behind", () => {
  /** 1 GiB of zeros in ~1 MB: gzip members of 1 MiB zeros, concatenated (valid gzip). */
  function zeroMembers(count: number): Buffer {
    const member = zlib.gzipSync(Buffer.alloc(1024 * 1024));
    return Buffer.concat(Array.from({ length: count }, () => member));
  }

  interface BadArchiveCase {
    label: string;
    build: () => Buffer;
    message: RegExp;
    limits?: { maxFiles?: number; maxBytes?: number };
  }
  const cases: BadArchiveCase[] = [
    { label: "'../' entries", build: () => tarGz([...validEntries(), tarFile("../evil.py", "x")]), message: /'\.\.'/ },
    { label: "nested '..' entries", build: () => tarGz([...validEntries(), tarFile("lib/../../evil.py", "x")]), message: /'\.\.'/ },
    { label: "absolute paths", build: () => tarGz([...validEntries(), tarFile("/tmp/evil.py", "x")]), message: /absolute/ },
    { label: "symlink entries", build: () => tarGz([...validEntries(), tarEntry({ path: "link", type: "SymbolicLink", linkpath: "/etc/passwd" })]), message: /SymbolicLink/ },
    { label: "hardlink entries", build: () => tarGz([...validEntries(), tarEntry({ path: "hard", type: "Link", linkpath: "main.py" })]), message: /Link/ },
    { label: "device entries", build: () => tarGz([...validEntries(), tarEntry({ path: "dev", type: "CharacterDevice" })]), message: /CharacterDevice/ },
    { label: "fifo entries", build: () => tarGz([...validEntries(), tarEntry({ path: "pipe", type: "FIFO" })]), message: /FIFO/ },
    { label: "too many files", build: () => tarGz([...validEntries(), ...Array.from({ length: 10 }, (_, i) => tarFile(`f${i}.py`, "x"))]), message: /more than 5 entries/, limits: { maxFiles: 5 } },
    { label: "too many bytes", build: () => tarGz([...validEntries(), tarFile("big.bin", Buffer.alloc(4096))]), message: /more than 2048 bytes/, limits: { maxBytes: 2048 } },
    {
      label: "a gzip bomb (1 GiB of zeros) over the default byte limit",
      build: () => Buffer.concat([zlib.gzipSync(Buffer.concat([...validEntries(), tarEntry({ path: "bomb.bin", size: 1024 ** 3 })])), zeroMembers(1024)]),
      message: /more than 536870912 bytes/,
    },
    {
      label: "endless zeros after the end of the archive",
      build: () => Buffer.concat([zlib.gzipSync(Buffer.concat(validEntries())), zeroMembers(64)]),
      message: /more than 1048576 bytes/,
      limits: { maxBytes: 1024 * 1024, maxFiles: 10 },
    },
    { label: "duplicate entries", build: () => tarGz([...validEntries(), tarFile("main.py", "again")]), message: /twice/ },
    { label: "a file where a directory is", build: () => tarGz([...validEntries(), tarFile("lib", "x"), tarFile("lib/a.py", "y")]), message: /conflict/ },
    { label: "not-gzip garbage", build: () => Buffer.from("this is not an archive at all"), message: /not a gzip/ },
    { label: "gzip of garbage", build: () => zlib.gzipSync(Buffer.from("garbage ".repeat(200))), message: /not a valid tar/ },
    { label: "truncated gzip", build: () => tarGz([...validEntries(), tarFile("x.bin", Buffer.alloc(100_000, 1))]).subarray(0, 200), message: /gzip/ },
    { label: "gzip inside gzip", build: () => zlib.gzipSync(tarGz(validEntries())), message: /compressed twice/ },
    { label: "no podium.json", build: () => tarGz([tarFile("main.py", "x")]), message: /podium\.json/ },
    { label: "a bad podium.json", build: () => tarGz([tarFile("podium.json", manifestJson({ runtime: "ruby" })), tarFile("main.py", "x")]), message: /"runtime"/ },
    { label: "a missing entry file", build: () => tarGz([tarFile("podium.json", manifestJson({ entry: "agent.py" })), tarFile("main.py", "x")]), message: /"entry"/ },
    { label: "two top-level folders", build: () => tarGz([...validEntries("a/"), ...validEntries("b/")]), message: /podium\.json/ },
  ];

  it.each(cases)("refuses $label with InvalidArgument", async ({ build, message, limits }) => {
    const dest = path.join(root, "dest");
    fs.mkdirSync(dest);
    await expectConnectError(extractBundle(build(), dest, limits), Code.InvalidArgument, message);
    expect(fs.readdirSync(dest)).toEqual([]);
    expect(fs.readdirSync(root)).toEqual(["dest"]);
  });

  it("removes a destination directory it created", async () => {
    const dest = path.join(root, "new/dest");
    await expectConnectError(extractBundle(tarGz([...validEntries(), tarFile("../x", "x")]), dest), Code.InvalidArgument);
    expect(fs.existsSync(dest)).toBe(false);
  });

  it("refuses a non-empty destination and honours an aborted signal", async () => {
    const dest = writeFiles(path.join(root, "dest"), { "keep.txt": "mine" });
    await expectConnectError(extractBundle(tarGz(validEntries()), dest), Code.FailedPrecondition, "not empty");
    expect(fs.readdirSync(dest)).toEqual(["keep.txt"]);
    const controller = new AbortController();
    controller.abort();
    await expectConnectError(extractBundle(tarGz(validEntries()), path.join(root, "x"), { signal: controller.signal }), Code.Canceled);
  });

  it("stops mid-file when the signal aborts and removes what it wrote", async () => {
    const dest = path.join(root, "dest");
    fs.mkdirSync(dest);
    const archive = tarGz([...validEntries(), tarFile("big.bin", Buffer.alloc(64 * 1024 * 1024))]);
    const controller = new AbortController();
    const poll = setInterval(() => {
      if (fs.existsSync(path.join(dest, "big.bin"))) controller.abort();
    }, 1);
    try {
      await expectConnectError(extractBundle(archive, dest, { signal: controller.signal }), Code.Canceled);
    } finally {
      clearInterval(poll);
    }
    expect(controller.signal.aborted).toBe(true);
    expect(fs.readdirSync(dest)).toEqual([]);
  });

  it("accepts './'-prefixed entries, directory entries and a single wrapping folder", async () => {
    const archive = tarGz([tarEntry({ path: "./", type: "Directory", mode: 0o755 }), tarEntry({ path: "./agent/", type: "Directory" }), ...validEntries("./agent/")]);
    const dest = path.join(root, "dest");
    const result = await extractBundle(archive, dest);
    expect(listTree(dest)).toEqual(["main.py", "podium.json"]);
    expect(result.files).toBe(2);
  });
});
