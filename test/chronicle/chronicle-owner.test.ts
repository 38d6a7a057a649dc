/**
 * Files the platform writes into a workspace (a file restore, materializing a restored agent) belong to
 * the owner of the workspace root, so an agent running as its own unprivileged uid can change them.
 * Needs root (only root can give files away); skipped otherwise.
 */
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "@jest/globals";
import { Chronicle } from "../../services/coordinator/chronicle/chronicle.js";
import { ChronicleFixture } from "./chronicle-test-utils.js";

const root = process.getuid?.() === 0;
const describeRoot = root ? describe : describe.skip;
if (!root) console.warn("test/chronicle/chronicle-owner.test.ts skipped: not root");

const AGENT = { uid: 600_000_000, gid: 600_000_000 };

function ownerOf(file: string): { uid: number; gid: number } {
  const stat = fs.lstatSync(file);
  return { uid: stat.uid, gid: stat.gid };
}

describeRoot("files Chronicle writes take the workspace root's owner", () => {
  let fx: ChronicleFixture;
  beforeEach(() => {
    fx = new ChronicleFixture();
  });
  afterEach(() => fx.cleanup());

  it("restore() writes the file, and creates its parents, as the owner of the workspace root", () => {
    fs.chownSync(fx.workspace, AGENT.uid, AGENT.gid);
    const c = fx.open({ watch: false });
    fx.write("a.txt", "one");
    fx.write("deep/er/b.txt", "bee");
    c.capture();
    fx.write("a.txt", "two");
    fx.remove("deep");
    c.capture();
    // Written by root (as the platform would), then restored.
    c.restore("a.txt", 1);
    c.restore("deep/er/b.txt", 1);
    expect(fx.readDisk("a.txt").toString()).toBe("one");
    for (const file of ["a.txt", "deep", "deep/er", "deep/er/b.txt"]) expect(ownerOf(path.join(fx.workspace, file))).toEqual(AGENT);
  });

  it("materializeWorkspace() writes every file as the owner of the workspace root", () => {
    const c = fx.open({ watch: false });
    fx.write("x/y.txt", "y");
    fx.write("z.txt", "z");
    c.capture();
    c.close();
    // A new (empty) workspace owned by the agent, as after a restore from S3 into its volume.
    fs.rmSync(fx.workspace, { recursive: true });
    fs.mkdirSync(fx.workspace);
    fs.chownSync(fx.workspace, AGENT.uid, AGENT.gid);
    const restored = Chronicle.open({ workspaceDir: fx.workspace, dbPath: fx.dbPath, watch: false });
    try {
      expect(restored.materializeWorkspace().files).toBe(2);
    } finally {
      restored.close();
    }
    for (const file of ["x", "x/y.txt", "z.txt"]) expect(ownerOf(path.join(fx.workspace, file))).toEqual(AGENT);
  });

  it("leaves files root's when root owns the workspace", () => {
    const c = fx.open({ watch: false });
    fx.write("a.txt", "one");
    c.capture();
    fx.write("a.txt", "two");
    c.capture();
    c.restore("a.txt", 1);
    expect(ownerOf(path.join(fx.workspace, "a.txt"))).toEqual({ uid: 0, gid: 0 });
  });
});
