import fs from "node:fs";
import path from "node:path";
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { resolveWorkspacePath } from "../../services/coordinator/chronicle/workspace-path.js";
import { ChronicleFixture, expectConnectError } from "./chronicle-test-utils.js";

describe("resolveWorkspacePath", () => {
  let fx: ChronicleFixture;
  let outside: string;

  beforeAll(() => {
    fx = new ChronicleFixture();
    outside = path.join(fx.root, "outside");
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, "secret.txt"), "top secret");
    fx.write("docs/readme.md", "hello");
    fx.write("inner/file.txt", "inner");
    fs.symlinkSync(path.join(outside, "secret.txt"), path.join(fx.workspace, "secret-link"));
    fs.symlinkSync(outside, path.join(fx.workspace, "outdir"));
    fs.symlinkSync("inner", path.join(fx.workspace, "inner-link"));
    fs.symlinkSync("does-not-exist", path.join(fx.workspace, "dangling"));
  });
  afterAll(() => fx.cleanup());

  it("normalizes ordinary paths", () => {
    expect(resolveWorkspacePath(fx.workspace, "docs/readme.md")).toEqual({
      relative: "docs/readme.md",
      absolute: path.join(fx.workspace, "docs", "readme.md"),
    });
    expect(resolveWorkspacePath(fx.workspace, "./docs//readme.md").relative).toBe("docs/readme.md");
    expect(resolveWorkspacePath(fx.workspace, "docs/").relative).toBe("docs");
    expect(resolveWorkspacePath(fx.workspace, "").relative).toBe("");
    expect(resolveWorkspacePath(fx.workspace, ".").relative).toBe("");
    // Missing files are fine (history of deleted files); names with '%' that decode harmlessly too.
    expect(resolveWorkspacePath(fx.workspace, "gone/away.txt").relative).toBe("gone/away.txt");
    expect(resolveWorkspacePath(fx.workspace, "100% done %20.txt").relative).toBe("100% done %20.txt");
    expect(resolveWorkspacePath(fx.workspace, "...").relative).toBe("...");
    // A symlink that stays inside is allowed.
    expect(resolveWorkspacePath(fx.workspace, "inner-link/file.txt").relative).toBe("inner-link/file.txt");
  });

  const refused: Array<[string, string, RegExp]> = [
    ["parent", "..", /'\.\.'/],
    ["parent prefix", "../x", /'\.\.'/],
    ["climb out of a subdirectory", "a/../../x", /'\.\.'/],
    ["dot-dot even when it stays inside", "a/../b", /'\.\.'/],
    ["absolute", "/etc/passwd", /absolute/],
    ["root slash", "/", /absolute/],
    ["NUL byte", "a\0b", /NUL/],
    ["backslash traversal", "..\\..\\etc\\passwd", /backslash/],
    ["backslash in a name", "a\\b", /backslash/],
    ["decoded %2e%2e%2f", decodeURIComponent("%2e%2e%2fetc%2fpasswd"), /'\.\.'/],
    ["still-encoded %2e%2e", "%2e%2e/etc/passwd", /percent-encoded/],
    ["still-encoded %2E%2E upper case", "docs/%2E%2E", /percent-encoded/],
    ["encoded slash", "..%2fetc", /percent-encoded/],
    ["double-encoded dot-dot", "%252e%252e/x", /percent-encoded/],
    ["encoded NUL", "a%00b", /percent-encoded/],
    ["overlong UTF-8 dot-dot", "%c0%ae%c0%ae/x", /overlong/],
    ["encoded dot-dot next to a stray %", "%2e%2e%2fx%zz", /percent-encoded/],
    ["drive letter", "C:/Windows", /drive-letter/],
    ["symlink to a file outside", "secret-link", /symlink that resolves outside/],
    ["symlinked directory outside", "outdir/secret.txt", /symlink that resolves outside/],
    ["symlinked directory outside itself", "outdir", /symlink that resolves outside/],
    ["dangling symlink", "dangling", /dangling/],
    ["overlong path", "a/".repeat(2100), /longer than/],
    ["overlong segment", "x".repeat(300), /segment/],
  ];

  it.each(refused)("refuses %s", (_name, userPath, message) => {
    expectConnectError(() => resolveWorkspacePath(fx.workspace, userPath), Code.InvalidArgument, message);
  });
});
