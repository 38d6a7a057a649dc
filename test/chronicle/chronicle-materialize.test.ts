import fs from "node:fs";
import path from "node:path";
import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import { ChronicleFixture } from "./chronicle-test-utils.js";

/** A chronicle database moved to a host without its workspace (what a restore from S3 produces). */
function moveDatabase(from: ChronicleFixture, to: ChronicleFixture): void {
  fs.copyFileSync(from.dbPath, to.dbPath);
}

describe("Chronicle.materializeWorkspace", () => {
  let source: ChronicleFixture;
  let target: ChronicleFixture;
  beforeEach(() => {
    source = new ChronicleFixture();
    target = new ChronicleFixture();
  });
  afterEach(() => {
    source.cleanup();
    target.cleanup();
  });

  it("writes the latest iteration's files and leaves nothing for the next capture", () => {
    const c = source.open();
    source.write("README.md", "# v1\n");
    source.write("src/a.ts", "export const a = 1;\n");
    source.write("bin/blob.bin", Buffer.from([0, 1, 2, 255, 0]));
    source.write("gone.txt", "soon deleted");
    c.capture();
    source.write("README.md", "# v2\n");
    source.remove("gone.txt");
    source.write("deep/er/x.txt", "x".repeat(3000));
    c.capture();
    const latest = c.latestIteration;
    c.close();
    moveDatabase(source, target);

    const restored = target.open();
    const result = restored.materializeWorkspace();
    expect(result).toEqual({ iteration: latest, files: 4, bytes: 5 + 20 + 5 + 3000, skipped: [] });
    expect(target.readDisk("README.md").toString()).toBe("# v2\n");
    expect(target.readDisk("src/a.ts").toString()).toBe("export const a = 1;\n");
    expect([...target.readDisk("bin/blob.bin")]).toEqual([0, 1, 2, 255, 0]);
    expect(target.readDisk("deep/er/x.txt").toString()).toBe("x".repeat(3000));
    expect(fs.existsSync(path.join(target.workspace, "gone.txt"))).toBe(false);
    // History came along; the workspace matches it, so nothing new is recorded.
    expect(restored.history("README.md").map((v) => v.change)).toEqual(["created", "modified"]);
    expect(restored.at("README.md", 1).content).toBe("# v1\n");
    expect(restored.capture()).toBeUndefined();
    expect(restored.latestIteration).toBe(latest);

    // Work continues from there.
    target.write("src/a.ts", "export const a = 2;\n");
    expect(restored.capture()?.files).toEqual([{ path: "src/a.ts", change: "modified" }]);
  });

  it("skips files whose content was never stored and leaves unknown files alone", () => {
    const c = source.open({ maxFileBytes: 10 });
    source.write("small.txt", "ok");
    source.write("big.txt", "this is more than ten bytes");
    c.capture();
    c.close();
    moveDatabase(source, target);
    target.write("local-only.txt", "mine");

    const restored = target.open({ maxFileBytes: 10 });
    const result = restored.materializeWorkspace();
    expect(result.files).toBe(1);
    expect(result.skipped).toEqual([{ path: "big.txt", reason: "tooLarge" }]);
    expect(target.readDisk("small.txt").toString()).toBe("ok");
    expect(target.readDisk("local-only.txt").toString()).toBe("mine");
    const next = restored.capture();
    expect(next?.files).toEqual([
      { path: "big.txt", change: "deleted" },
      { path: "local-only.txt", change: "created" },
    ]);
  });

  it("overwrites stale copies of listed files", () => {
    const c = source.open();
    source.write("a.txt", "recorded");
    c.capture();
    c.close();
    moveDatabase(source, target);
    target.write("a.txt", "stale content on this host");

    const restored = target.open();
    expect(restored.materializeWorkspace().files).toBe(1);
    expect(target.readDisk("a.txt").toString()).toBe("recorded");
    expect(restored.capture()).toBeUndefined();
  });
});
