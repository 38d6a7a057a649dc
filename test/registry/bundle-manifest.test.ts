import { describe, it, expect } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { formatDeploymentId, parseBundleManifest, parseDeploymentId } from "../../services/registry/index.js";

const good = { name: "echo-agent", version: "1.2.3-rc.1+build.5", runtime: "typescript", entry: "src/main.ts" };

function invalidField(json: unknown): string {
  try {
    parseBundleManifest(json);
  } catch (error) {
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    return (error as ConnectError).rawMessage;
  }
  throw new Error("expected InvalidArgument");
}

describe("parseBundleManifest", () => {
  it("accepts a valid manifest, ignores unknown fields and normalizes the entry", () => {
    expect(parseBundleManifest({ ...good, description: "x" })).toEqual({ ...good, network: "egress", onBusy: "enqueue" });
    expect(parseBundleManifest({ ...good, network: "none" }).network).toBe("none");
    expect(parseBundleManifest({ ...good, on_busy: "interrupt" }).onBusy).toBe("interrupt");
    expect(parseBundleManifest({ ...good, runtime: "python", entry: "./agent/main.py" }).entry).toBe("agent/main.py");
    expect(parseBundleManifest({ ...good, entry: "main.mjs" }).entry).toBe("main.mjs");
    expect(parseBundleManifest({ ...good, entry: "dist/main.js" }).entry).toBe("dist/main.js");
  });

  const cases: [string, unknown, string][] = [
    ["not an object", [1, 2], "JSON object"],
    ["null", null, "JSON object"],
    ["missing name", { ...good, name: undefined }, '"name"'],
    ["uppercase name", { ...good, name: "Echo" }, '"name"'],
    ["name starting with '.'", { ...good, name: ".echo" }, '"name"'],
    ["name with '/'", { ...good, name: "a/b" }, '"name"'],
    ["name too long", { ...good, name: "a".repeat(65) }, '"name"'],
    ["numeric name", { ...good, name: 5 }, '"name"'],
    ["missing version", { ...good, version: undefined }, '"version"'],
    ["empty version", { ...good, version: "" }, '"version"'],
    ["version with ':'", { ...good, version: "1:0" }, '"version"'],
    ["version with '@'", { ...good, version: "1@0" }, '"version"'],
    ["version starting with '-'", { ...good, version: "-1" }, '"version"'],
    ["unknown runtime", { ...good, runtime: "ruby" }, '"runtime"'],
    ["unknown network policy", { ...good, network: "all" }, '"network"'],
    ["unknown on_busy policy", { ...good, on_busy: "rollback" }, '"on_busy" must be one of "enqueue", "reject", "interrupt"'],
    ["missing runtime", { ...good, runtime: undefined }, '"runtime"'],
    ["missing entry", { ...good, entry: undefined }, '"entry"'],
    ["empty entry", { ...good, entry: "" }, '"entry"'],
    ["absolute entry", { ...good, entry: "/src/main.ts" }, '"entry"'],
    ["windows absolute entry", { ...good, entry: "C:/main.ts" }, '"entry"'],
    ["entry with '..'", { ...good, entry: "src/../../main.ts" }, '"entry"'],
    ["entry with backslash", { ...good, entry: "src\\main.ts" }, '"entry"'],
    ["entry naming a directory", { ...good, entry: "./" }, '"entry"'],
    ["python entry for typescript", { ...good, entry: "main.py" }, '"entry"'],
    ["typescript entry for python", { ...good, runtime: "python", entry: "main.ts" }, '"entry"'],
  ];
  it.each(cases)("rejects %s naming the field", (_label, json, field) => {
    expect(invalidField(json)).toContain(field);
  });
});

describe("parseDeploymentId", () => {
  it("parses full ids and applies the default registry", () => {
    expect(parseDeploymentId("echo:1.0.0@local")).toEqual({ name: "echo", version: "1.0.0", registry: "local" });
    expect(parseDeploymentId("echo:1.0.0")).toEqual({ name: "echo", version: "1.0.0", registry: "local" });
    expect(parseDeploymentId("echo:1.0.0", "s3")).toEqual({ name: "echo", version: "1.0.0", registry: "s3" });
    expect(parseDeploymentId("echo:2.0+b1@s3")).toEqual({ name: "echo", version: "2.0+b1", registry: "s3" });
    expect(formatDeploymentId({ name: "echo", version: "1", registry: "local" })).toBe("echo:1@local");
  });

  it.each(["echo", "echo@local", ":1.0@local", "echo:@local", "echo:1.0@", "Echo:1.0", "echo:1.0@local@x", "echo:1:0", "", "echo:1.0@Local"])("rejects %j with InvalidArgument", (id) => {
    let caught: unknown;
    try {
      parseDeploymentId(id);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConnectError);
    expect((caught as ConnectError).code).toBe(Code.InvalidArgument);
  });
});
