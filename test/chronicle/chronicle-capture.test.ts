import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { ChronicleFixture, expectConnectError } from "./chronicle-test-utils.js";

const sha = (data: string | Buffer) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

function run(command: string, cwd: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", command], { cwd, stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) => resolve(code));
  });
}

describe("Chronicle capture and history", () => {
  let fx: ChronicleFixture;
  beforeEach(() => {
    fx = new ChronicleFixture();
  });
  afterEach(() => fx.cleanup());

  it("records create / modify / delete / re-create with exact history and contents", () => {
    const c = fx.open();
    expect(c.capture()).toBeUndefined(); // empty workspace: nothing to record
    expect(c.latestIteration).toBe(0);

    fx.write("notes.txt", "one");
    fx.write("keep.txt", "stays");
    const first = c.capture();
    expect(first?.iteration).toBe(1);
    expect(first?.files).toEqual([
      { path: "keep.txt", change: "created" },
      { path: "notes.txt", change: "created" },
    ]);
    expect(first?.quotaExceeded).toBeUndefined();
    expect(c.capture()).toBeUndefined(); // nothing changed since

    fx.write("notes.txt", "two!"); // different size
    expect(c.capture()?.files).toEqual([{ path: "notes.txt", change: "modified" }]);
    fx.write("notes.txt", "thr!"); // same size, written right after the capture: caught anyway
    expect(c.capture()?.files).toEqual([{ path: "notes.txt", change: "modified" }]);
    fx.remove("notes.txt");
    expect(c.capture()?.files).toEqual([{ path: "notes.txt", change: "deleted" }]);
    fx.write("notes.txt", "one"); // re-created with the very first content
    const last = c.capture();
    expect(last).toMatchObject({ iteration: 5, files: [{ path: "notes.txt", change: "created" }] });

    const history = c.history("notes.txt");
    expect(history.map((h) => [h.iteration, h.change, h.size, h.hash])).toEqual([
      [1, "created", 3, sha("one")],
      [2, "modified", 4, sha("two!")],
      [3, "modified", 4, sha("thr!")],
      [4, "deleted", 0, ""],
      [5, "created", 3, sha("one")],
    ]);
    for (let i = 1; i < history.length; i++) expect(history[i]!.timestamp).toBeGreaterThanOrEqual(history[i - 1]!.timestamp);

    expect(c.at("notes.txt", 1)).toEqual({ path: "notes.txt", content: "one", encoding: "utf8", size: 3, iteration: 1, hash: sha("one") });
    expect(c.at("notes.txt", 2).content).toBe("two!");
    expect(c.at("notes.txt", 3).content).toBe("thr!");
    expectConnectError(() => c.at("notes.txt", 4), Code.NotFound, /did not exist at iteration 4 \(deleted at iteration 4\)/);
    expect(c.at("notes.txt", 5)).toMatchObject({ content: "one", iteration: 5 });
    expect(c.read("notes.txt")).toMatchObject({ content: "one", iteration: 5 });
    expect(c.read("keep.txt")).toMatchObject({ content: "stays", iteration: 1 });
    expect(c.at("keep.txt", 4)).toMatchObject({ content: "stays", iteration: 1 }); // unchanged since 1: the version from 1
    expect(c.history("keep.txt").map((h) => h.iteration)).toEqual([1]);
    expect(c.changes(1)).toEqual([
      { path: "keep.txt", change: "created" },
      { path: "notes.txt", change: "created" },
    ]);
    expect(c.changes(4)).toEqual([{ path: "notes.txt", change: "deleted" }]);

    expectConnectError(() => c.at("notes.txt", 6), Code.NotFound, /iteration 6 does not exist \(latest is 5\)/);
    expectConnectError(() => c.at("notes.txt", 0), Code.InvalidArgument, /positive integer/);
    expectConnectError(() => c.at("keep.txt", 1.5), Code.InvalidArgument);
    expectConnectError(() => c.read("nope.txt"), Code.NotFound, /"nope.txt" does not exist/);
    expectConnectError(() => c.history("nope.txt"), Code.NotFound, /never recorded/);
  });

  it("releaseMemory (an idle agent) keeps the history and the next captures; a no-op once closed", () => {
    const c = fx.open();
    fx.write("a.txt", "one");
    expect(c.capture()?.iteration).toBe(1);
    c.releaseMemory();
    expect(c.read("a.txt").content).toBe("one");
    fx.write("a.txt", "two");
    expect(c.capture()?.iteration).toBe(2);
    expect(c.history("a.txt").map((meta) => meta.iteration)).toEqual([1, 2]);
    c.close();
    expect(() => c.releaseMemory()).not.toThrow();
  });

  it("reports a deleted file as deleted and a directory as a directory", () => {
    const c = fx.open();
    fx.write("dir/a.txt", "a");
    fx.write("late.txt", "x");
    c.capture();
    fx.remove("late.txt");
    c.capture();
    expectConnectError(() => c.read("late.txt"), Code.NotFound, /deleted at iteration 2/);
    expectConnectError(() => c.read("dir"), Code.InvalidArgument, /is a directory/);
    expectConnectError(() => c.history("dir"), Code.InvalidArgument, /is a directory/);
    fx.write("newer.txt", "n");
    c.capture();
    expectConnectError(() => c.at("newer.txt", 1), Code.NotFound, /did not exist at iteration 1 \(it was first recorded at iteration 3\)/);
  });

  it("captures writes made by child processes", async () => {
    const c = fx.open();
    expect(await run("mkdir -p sub && echo hi > sub/x.txt && printf 'a\\nb\\n' > top.txt", fx.workspace)).toBe(0);
    const result = c.capture();
    expect(result?.files).toEqual([
      { path: "sub/x.txt", change: "created" },
      { path: "top.txt", change: "created" },
    ]);
    expect(c.read("sub/x.txt").content).toBe("hi\n");
    expect(await run("echo more >> sub/x.txt && rm top.txt", fx.workspace)).toBe(0);
    expect(c.capture()?.files).toEqual([
      { path: "sub/x.txt", change: "modified" },
      { path: "top.txt", change: "deleted" },
    ]);
    expect(c.read("sub/x.txt").content).toBe("hi\nmore\n");
  });

  it("round-trips binary content byte-exactly as base64", () => {
    const c = fx.open();
    const binary = Buffer.from([0, 1, 2, 255, 254, 0x80, 0xc3, 0x28, 10, 0]);
    const withNul = Buffer.from("text\0with nul", "utf8");
    const utf8 = "héllo wörld ✓ 🎉\n";
    fx.write("bin.dat", binary);
    fx.write("nul.txt", withNul);
    fx.write("utf8.txt", utf8);
    fx.write("empty.txt", "");
    c.capture();
    const bin = c.read("bin.dat");
    expect(bin.encoding).toBe("base64");
    expect(Buffer.from(bin.content, "base64").equals(binary)).toBe(true);
    expect(bin).toMatchObject({ size: binary.length, hash: sha(binary) });
    expect(c.read("nul.txt").encoding).toBe("base64");
    expect(Buffer.from(c.read("nul.txt").content, "base64").equals(withNul)).toBe(true);
    expect(c.read("utf8.txt")).toMatchObject({ content: utf8, encoding: "utf8", size: Buffer.byteLength(utf8) });
    expect(c.read("empty.txt")).toMatchObject({ content: "", encoding: "utf8", size: 0, hash: sha("") });
  });

  it("streams large multi-chunk files byte-exactly", async () => {
    const c = fx.open();
    const big = randomBytes(2.5 * 1024 * 1024); // 3 chunks, incompressible (stored raw)
    const text = Buffer.from("line of text\n".repeat(200_000)); // ~2.6 MB, compressible
    fx.write("big.bin", big);
    fx.write("big.txt", text);
    c.capture();
    for (const [name, data] of [
      ["big.bin", big],
      ["big.txt", text],
    ] as const) {
      const { file, stream } = c.openBlobStream(name);
      expect(file).toEqual({ path: name, size: data.length, iteration: 1, hash: sha(data) });
      const parts: Buffer[] = [];
      for await (const part of stream) parts.push(part as Buffer);
      expect(Buffer.concat(parts).equals(data)).toBe(true);
    }
    expect(Buffer.from(c.read("big.bin").content, "base64").equals(big)).toBe(true);
    expect(c.read("big.txt")).toMatchObject({ encoding: "utf8", content: text.toString("utf8") });
    expect(c.stat("big.bin")).toEqual({ path: "big.bin", size: big.length, iteration: 1, hash: sha(big) });
    const usage = c.usage();
    expect(usage.blobStoredBytes).toBeLessThan(big.length + text.length / 4);
  });

  it("stores identical content once (dedup across files and iterations)", () => {
    const c = fx.open();
    const content = "the same bytes\n".repeat(100);
    fx.write("a.txt", content);
    fx.write("nested/b.txt", content);
    c.capture();
    fx.write("a.txt", "changed");
    c.capture();
    fx.write("a.txt", content); // back to the shared content
    c.capture();
    expect(c.read("a.txt").hash).toBe(c.read("nested/b.txt").hash);
    const usage = c.usage();
    expect(usage.blobCount).toBe(2); // `content` and "changed"
    c.close();
    const db = new Database(fx.dbPath, { readonly: true });
    try {
      const rows = db.prepare("SELECT count(*) AS n FROM blobs WHERE hash = ?").get(sha(content).slice(7)) as { n: number };
      expect(rows.n).toBe(1);
      const chunks = db.prepare("SELECT count(*) AS n FROM blob_chunks").get() as { n: number };
      expect(chunks.n).toBe(2);
    } finally {
      db.close();
    }
  });

  it("keeps history and contents across close and reopen, and continues the numbering", () => {
    let c = fx.open();
    fx.write("a.txt", "v1");
    c.capture();
    fx.write("a.txt", "v2-longer");
    fx.write("b/c.txt", "c");
    c.capture();
    c.close();
    expectConnectError(() => c.read("a.txt"), Code.FailedPrecondition, /closed/);

    c = fx.open();
    expect(c.latestIteration).toBe(2);
    expect(c.capture()).toBeUndefined(); // the manifest survived: nothing looks new
    expect(c.history("a.txt").map((h) => h.iteration)).toEqual([1, 2]);
    expect(c.at("a.txt", 1).content).toBe("v1");
    expect(c.read("a.txt").content).toBe("v2-longer");
    expect(c.list("", 2).map((e) => e.path)).toEqual(["a.txt", "b", "b/c.txt"]);
    fx.remove("b");
    expect(c.capture()).toMatchObject({ iteration: 3, files: [{ path: "b/c.txt", change: "deleted" }] });
  });

  it("refuses a second open of the same database and a database inside the workspace", () => {
    fx.open();
    expectConnectError(() => fx.open(), Code.FailedPrecondition, /already open/);
    expectConnectError(() => fx.open({ dbPath: path.join(fx.workspace, "h.db") }), Code.InvalidArgument, /inside the workspace/);
    const fresh = { workspaceDir: path.join(fx.root, "missing"), dbPath: path.join(fx.root, "fresh.db") };
    expectConnectError(() => fx.open(fresh), Code.NotFound, /does not exist/);
    fx.write("file.txt", "f");
    expectConnectError(() => fx.open({ workspaceDir: path.join(fx.workspace, "file.txt"), dbPath: fresh.dbPath }), Code.InvalidArgument, /not a directory/);
  });

  it("reports quota exceeded but still records", () => {
    const c = fx.open({ quotaBytes: 100 });
    fx.write("small.txt", "x".repeat(60));
    expect(c.capture()).toMatchObject({ iteration: 1, liveBytes: 60, quotaBytes: 100 });
    expect(c.capture()?.quotaExceeded).toBeUndefined();
    fx.write("more.txt", "y".repeat(60));
    const over = c.capture();
    expect(over).toMatchObject({ iteration: 2, quotaExceeded: true, liveBytes: 120, quotaBytes: 100 });
    expect(c.read("more.txt").size).toBe(60);
    fx.remove("more.txt");
    expect(c.capture()?.quotaExceeded).toBeUndefined();
  });

  it("records files over maxFileBytes by metadata only", () => {
    const c = fx.open({ maxFileBytes: 10 });
    fx.write("ok.txt", "0123456789");
    fx.write("huge.log", "01234567890");
    expect(c.capture()?.files).toEqual([
      { path: "huge.log", change: "created", tooLarge: true },
      { path: "ok.txt", change: "created" },
    ]);
    expect(c.history("huge.log")).toEqual([expect.objectContaining({ iteration: 1, change: "created", size: 11, hash: "", tooLarge: true })]);
    expectConnectError(() => c.read("huge.log"), Code.ResourceExhausted, /over the 10-byte limit/);
    expect(c.list().find((e) => e.path === "huge.log")).toMatchObject({ type: "file", size: 11 });
    fx.write("huge.log", "0123"); // shrinks under the limit: now stored
    expect(c.capture()?.files).toEqual([{ path: "huge.log", change: "modified" }]);
    expect(c.read("huge.log").content).toBe("0123");
  });

  it("ignores configured names anywhere in the tree", () => {
    const c = fx.open({ ignore: ["node_modules", ".git"] });
    fx.write("node_modules/pkg/index.js", "x");
    fx.write("sub/.git/HEAD", "ref");
    fx.write("sub/code.ts", "code");
    expect(c.capture()?.files).toEqual([{ path: "sub/code.ts", change: "created" }]);
  });

  it("fails loudly when the workspace itself is gone instead of recording a mass deletion", () => {
    const c = fx.open();
    fx.write("a.txt", "a");
    c.capture();
    fs.rmSync(fx.workspace, { recursive: true });
    expectConnectError(() => c.capture(), Code.FailedPrecondition, /cannot scan workspace/);
    expect(c.read("a.txt").content).toBe("a");
    c.close();
    const reopened = fx.open(); // a stopped agent whose workspace is gone: history stays readable
    expect(reopened.history("a.txt").map((h) => h.change)).toEqual(["created"]);
    expect(reopened.list().map((e) => e.path)).toEqual(["a.txt"]);
    expectConnectError(() => reopened.restore("a.txt", 1), Code.FailedPrecondition);
  });

  it("keeps files below unreadable directories and reports them", () => {
    // Root reads everything, so as root the scenario runs in a child without the DAC capabilities.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-unreadable-"));
    const chronicleModule = path.join(REPO_ROOT, "services/coordinator/chronicle/chronicle.ts");
    const script = `
      import fs from "node:fs";
      import { Chronicle } from ${JSON.stringify(chronicleModule)};
      const ws = ${JSON.stringify(path.join(dir, "ws"))};
      fs.mkdirSync(ws + "/locked", { recursive: true });
      fs.writeFileSync(ws + "/locked/a.txt", "a");
      const c = Chronicle.open({ workspaceDir: ws, dbPath: ${JSON.stringify(path.join(dir, "c.db"))} });
      c.capture();
      fs.chmodSync(ws + "/locked", 0o000);
      fs.writeFileSync(ws + "/new.txt", "n");
      const result = c.capture();
      const kept = c.read("locked/a.txt").content;
      fs.chmodSync(ws + "/locked", 0o755);
      c.close();
      process.stdout.write(JSON.stringify({ files: result?.files, skipped: result?.skipped, kept }));
    `;
    const node = [process.execPath, "--import", "tsx", "--input-type=module", "-e", script];
    const drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search", "--"];
    const [command, ...args] = process.getuid?.() === 0 ? [...drop, ...node] : node;
    const child = spawnSync(command as string, args, { encoding: "utf8", cwd: REPO_ROOT });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(child.stderr).toBe("");
    expect(JSON.parse(child.stdout)).toEqual({
      files: [{ path: "new.txt", change: "created" }],
      skipped: [{ path: "locked", reason: "EACCES" }],
      kept: "a",
    });
  });

  it("fails a blob stream when the chronicle closes mid-way", async () => {
    const c = fx.open();
    fx.write("big.bin", randomBytes(3 * 1024 * 1024));
    c.capture();
    const { stream } = c.openBlobStream("big.bin");
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    c.close();
    await expect(
      (async () => {
        for (;;) if ((await iterator.next()).done) break;
      })(),
    ).rejects.toThrow(/closed/);
  });

  it("skips symlinks and special files, never following them", () => {
    const c = fx.open();
    const outside = path.join(fx.root, "outside.txt");
    fs.writeFileSync(outside, "secret");
    fx.write("real.txt", "real");
    fs.symlinkSync(outside, path.join(fx.workspace, "link-out.txt"));
    fs.symlinkSync("real.txt", path.join(fx.workspace, "link-in.txt"));
    fs.symlinkSync(fx.root, path.join(fx.workspace, "loop-dir"));
    const fifo = path.join(fx.workspace, "pipe");
    const mkfifo = spawnSyncOk("mkfifo", [fifo]);
    const result = c.capture();
    expect(result?.files).toEqual([{ path: "real.txt", change: "created" }]);
    expect(c.list().map((e) => e.path)).toEqual(["real.txt"]);
    if (mkfifo) expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
  });
});

function spawnSyncOk(command: string, args: string[]): boolean {
  return spawnSync(command, args).status === 0;
}
