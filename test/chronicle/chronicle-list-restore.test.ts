import fs from "node:fs";
import path from "node:path";
import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import type { Chronicle } from "../../services/coordinator/chronicle/chronicle.js";
import { ChronicleFixture, expectConnectError } from "./chronicle-test-utils.js";

describe("Chronicle.list", () => {
  let fx: ChronicleFixture;
  let c: Chronicle;
  beforeEach(() => {
    fx = new ChronicleFixture();
    c = fx.open();
    fx.write("README.md", "# hi\n"); // 5 bytes
    fx.write("src/index.ts", "export {};\n"); // 11
    fx.write("src/lib/util.ts", "x"); // 1
    fx.write("src/lib/deep/more.ts", "yy"); // 2
    fx.write("docs/guide.md", "guide"); // 5
    c.capture();
  });
  afterEach(() => fx.cleanup());

  const paths = (entries: { path: string; type: string }[]) => entries.map((e) => `${e.type === "directory" ? "d" : "f"} ${e.path}`);

  it("lists the root one level deep by default", () => {
    expect(paths(c.list())).toEqual(["f README.md", "d docs", "d src"]);
    expect(paths(c.list("", 0))).toEqual(paths(c.list()));
    expect(paths(c.list("."))).toEqual(paths(c.list()));
    const src = c.list().find((e) => e.path === "src");
    expect(src).toMatchObject({ name: "src", type: "directory", size: 14, iteration: 1 });
    const readme = c.list().find((e) => e.path === "README.md");
    expect(readme).toMatchObject({ name: "README.md", type: "file", size: 5, iteration: 1 });
    const onDisk = Math.floor(fs.statSync(path.join(fx.workspace, "README.md")).mtimeMs);
    expect(readme?.modifiedAt).toBe(onDisk);
  });

  it("descends `depth` levels", () => {
    expect(paths(c.list("", 2))).toEqual(["f README.md", "d docs", "f docs/guide.md", "d src", "f src/index.ts", "d src/lib"]);
    expect(paths(c.list("", 10))).toEqual(["f README.md", "d docs", "f docs/guide.md", "d src", "f src/index.ts", "d src/lib", "d src/lib/deep", "f src/lib/deep/more.ts", "f src/lib/util.ts"]);
  });

  it("lists below a path", () => {
    expect(paths(c.list("src"))).toEqual(["f src/index.ts", "d src/lib"]);
    expect(paths(c.list("src/lib/", 2))).toEqual(["d src/lib/deep", "f src/lib/deep/more.ts", "f src/lib/util.ts"]);
    expect(c.list("src/lib").find((e) => e.path === "src/lib/deep")).toMatchObject({ name: "deep", size: 2 });
  });

  it("reflects the latest iteration, with per-entry iterations", () => {
    fx.write("src/lib/util.ts", "changed");
    fx.remove("docs");
    c.capture();
    expect(paths(c.list())).toEqual(["f README.md", "d src"]);
    expect(c.list().find((e) => e.path === "src")?.iteration).toBe(2);
    expect(c.list().find((e) => e.path === "README.md")?.iteration).toBe(1);
    expectConnectError(() => c.list("docs"), Code.NotFound, /directory "docs" does not exist/);
  });

  it("rejects missing directories, files, bad depth and traversal", () => {
    expectConnectError(() => c.list("nope"), Code.NotFound, /does not exist/);
    expectConnectError(() => c.list("README.md"), Code.InvalidArgument, /is a file/);
    expectConnectError(() => c.list("", -1), Code.InvalidArgument, /depth/);
    expectConnectError(() => c.list("", 1.5), Code.InvalidArgument, /depth/);
    expectConnectError(() => c.list("../"), Code.InvalidArgument, /'\.\.'/);
    expectConnectError(() => c.list("/"), Code.InvalidArgument, /absolute/);
  });

  it("lists an empty workspace as empty", () => {
    const other = new ChronicleFixture();
    try {
      expect(other.open().list()).toEqual([]);
    } finally {
      other.cleanup();
    }
  });
});

describe("Chronicle.restore", () => {
  let fx: ChronicleFixture;
  beforeEach(() => {
    fx = new ChronicleFixture();
  });
  afterEach(() => fx.cleanup());

  it("writes the old content back and records it as a new iteration", () => {
    const c = fx.open();
    fx.write("a.txt", "version one");
    c.capture();
    fx.write("a.txt", "version two, longer");
    c.capture();
    const meta = c.restore("a.txt", 1);
    expect(meta).toMatchObject({ iteration: 3, change: "modified", size: 11, hash: c.at("a.txt", 1).hash });
    expect(fx.readDisk("a.txt").toString()).toBe("version one");
    expect(c.read("a.txt")).toMatchObject({ content: "version one", iteration: 3 });
    expect(c.history("a.txt").map((h) => [h.iteration, h.change])).toEqual([
      [1, "created"],
      [2, "modified"],
      [3, "modified"],
    ]);
    expect(c.capture()).toBeUndefined(); // the restored file is already recorded
    expect(c.latestIteration).toBe(3);
    // No leftover temp files.
    expect(fs.readdirSync(fx.workspace)).toEqual(["a.txt"]);
  });

  it("captures pending changes first, re-creates deleted files and parents, and keeps the file mode", () => {
    const c = fx.open();
    fx.write("bin/run.sh", "#!/bin/sh\necho 1\n");
    fs.chmodSync(path.join(fx.workspace, "bin/run.sh"), 0o755);
    c.capture();
    fx.write("bin/run.sh", "#!/bin/sh\necho 2\n");
    fx.write("other.txt", "pending");
    const meta = c.restore("bin/run.sh", 1); // iteration 2 = the pending changes, 3 = the restore
    expect(meta.iteration).toBe(3);
    expect(c.changes(2)).toEqual([
      { path: "bin/run.sh", change: "modified" },
      { path: "other.txt", change: "created" },
    ]);
    expect(c.changes(3)).toEqual([{ path: "bin/run.sh", change: "modified" }]);
    expect(fs.statSync(path.join(fx.workspace, "bin/run.sh")).mode & 0o777).toBe(0o755);

    fx.remove("bin");
    c.capture(); // 4: deleted
    const recreated = c.restore("bin/run.sh", 2);
    expect(recreated).toMatchObject({ iteration: 5, change: "created" });
    expect(fx.readDisk("bin/run.sh").toString()).toBe("#!/bin/sh\necho 2\n");
  });

  it("is a no-op when the file already has that content", () => {
    const c = fx.open();
    fx.write("a.txt", "same");
    c.capture();
    expect(c.restore("a.txt", 1)).toMatchObject({ iteration: 1, change: "created" });
    expect(c.latestIteration).toBe(1);
  });

  it("refuses what cannot be restored", () => {
    const c = fx.open();
    fx.write("a.txt", "a");
    c.capture();
    fx.remove("a.txt");
    c.capture();
    expectConnectError(() => c.restore("a.txt", 2), Code.NotFound, /deleted at iteration 2/);
    expectConnectError(() => c.restore("a.txt", 9), Code.NotFound, /does not exist/);
    expectConnectError(() => c.restore("../a.txt", 1), Code.InvalidArgument);
    fs.mkdirSync(path.join(fx.workspace, "a.txt")); // a directory took its place
    fx.write("a.txt/inner", "x");
    expectConnectError(() => c.restore("a.txt", 1), Code.FailedPrecondition, /is a directory/);
  });

  it("does not write through a symlinked parent", () => {
    const c = fx.open();
    fx.write("dir/a.txt", "inside");
    c.capture();
    const outside = path.join(fx.root, "outside");
    fs.mkdirSync(outside);
    fx.remove("dir");
    fs.symlinkSync(outside, path.join(fx.workspace, "dir"));
    expectConnectError(() => c.restore("dir/a.txt", 1), Code.InvalidArgument, /outside the workspace/);
    fs.rmSync(path.join(fx.workspace, "dir"));
    fs.symlinkSync(".", path.join(fx.workspace, "dir")); // inside, but a symlink: refused for writes
    expectConnectError(() => c.restore("dir/a.txt", 1), Code.FailedPrecondition, /is a symlink/);
    expect(fs.readdirSync(outside)).toEqual([]);
  });
});
