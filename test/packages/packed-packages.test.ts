/**
 * The four npm packages as their users get them (#14 item 1, item 5's TypeScript Connect client):
 * `npm pack` every package, install the tarballs into a fresh project outside the repository, and use
 * them there against a live Podium: plain-Node client, a strict tsc over every public type, an agent on
 * the installed SDK deployed with the installed `podium deploy`, a Connect client from the packed
 * descriptors, and @podium-agents/testing running the installed server.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { PACKAGES, createConsumerProject, linksIntoRepo, packPackages, run, tempDir, writePublicTypes, type PackedPackage } from "./consumer-project.js";

const STEP = 120_000;

let podium: DevFixture;
let packs: string;
let consumer: string;
let packed: PackedPackage[];

beforeAll(async () => {
  packs = tempDir("podium-packs-");
  consumer = tempDir("podium-consumer-");
  const started = startDevFixture();
  try {
    packed = await packPackages(packs);
    await createConsumerProject(
      consumer,
      packed.map((p) => path.join(packs, p.filename)),
    );
  } finally {
    podium = await started;
  }
}, 600_000);

afterAll(async () => {
  await podium?.close();
  for (const dir of [packs, consumer]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs a consumer script and parses the one JSON line it prints. */
async function runJson(command: string, args: string[]): Promise<Record<string, unknown>> {
  const result = await run(command, args, { cwd: consumer, timeoutMs: STEP });
  expect({ code: result.code, stderr: result.code === 0 ? "" : result.stderr }).toEqual({ code: 0, stderr: "" });
  return JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>;
}

describe("packed packages", () => {
  it("are four tarballs of compiled JavaScript with .d.ts, installed as copies", () => {
    expect(packed.map((p) => p.name).sort()).toEqual(PACKAGES.map((p) => p.name).sort());
    for (const { dir, name } of PACKAGES) {
      const manifest = JSON.parse(fs.readFileSync(path.join(consumer, "node_modules", name, "package.json"), "utf8")) as {
        exports: Record<string, string | { types: string; default: string }>;
      };
      const files = new Set(packed.find((p) => p.name === name)?.files.map((f) => f.path));
      for (const [subpath, target] of Object.entries(manifest.exports)) {
        if (typeof target === "string") continue; // ./package.json
        expect({ subpath, types: files.has(target.types.slice(2)), js: files.has(target.default.slice(2)) }).toEqual({ subpath, types: true, js: true });
        expect(target.default).toMatch(/\.js$/);
        expect(target.types).toMatch(/\.d\.ts$/);
      }
      // TypeScript source ships only where Bun runs it: the agent runner inside the server package.
      const sources = [...files].filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"));
      expect({ dir, sources: sources.filter((f) => !f.startsWith("sdk/typescript/src/")) }).toEqual({ dir, sources: [] });
    }
    expect(consumer.startsWith(REPO_ROOT + path.sep)).toBe(false);
    expect(linksIntoRepo(consumer)).toEqual([]);
  });

  it(
    "(a) plain node: @podium-agents/client creates an instance, sends a message and reads events until turn.done",
    async () => {
      const out = await runJson(process.execPath, ["client.mjs", podium.url, API_KEY, "echo-ts:1.0.0@local", "hello packed client"]);
      expect(out.reply).toBe("hello packed client");
      expect((out.types as string[]).at(-1)).toBe("turn.done");
      expect(out.types).toContain("stream_start");
    },
    STEP,
  );

  it(
    "(b) a strict tsc (NodeNext, skipLibCheck false, no DOM) accepts every public type of client, sdk and testing",
    async () => {
      const exported = writePublicTypes(consumer, ["@podium-agents/client", "@podium-agents/client/proto", "@podium-agents/sdk", "@podium-agents/testing"]);
      expect(exported["@podium-agents/client"]).toEqual(expect.arrayContaining(["PodiumClient", "PodiumConnectionError", "PodiumEvent", "PodiumClientOptions"]));
      expect(exported["@podium-agents/client/proto"]).toEqual(expect.arrayContaining(["InstanceService", "FileService", "DeploymentService", "StreamUpdate"]));
      expect(exported["@podium-agents/sdk"]).toEqual(expect.arrayContaining(["defineAgent", "Agent", "AgentContext", "AgentInfo", "JsonObject"]));
      expect(exported["@podium-agents/testing"]).toEqual(expect.arrayContaining(["createTestPodium", "TestPodium", "TestAgent", "TurnResult"]));
      const tsc = await run(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], { cwd: consumer, timeoutMs: STEP });
      expect({ code: tsc.code, out: tsc.stdout + tsc.stderr }).toEqual({ code: 0, out: "" });
    },
    STEP,
  );

  it(
    "(c) an agent on the installed @podium-agents/sdk, deployed with the installed `podium deploy`, answers",
    async () => {
      const deployed = await run(path.join(consumer, "node_modules/.bin/podium"), ["deploy", "sdk-agent", "--url", podium.url, "--api-key", API_KEY], {
        cwd: consumer,
        timeoutMs: STEP,
      });
      expect({ code: deployed.code, stderr: deployed.code === 0 ? "" : deployed.stderr }).toEqual({ code: 0, stderr: "" });
      const deploymentId = (JSON.parse(deployed.stdout) as { deployment_id: string }).deployment_id;
      expect(deploymentId).toBe("packed-sdk-agent:1.0.0@local");
      const out = await runJson(process.execPath, ["client.mjs", podium.url, API_KEY, deploymentId, "hi sdk"]);
      expect(out.reply).toBe("sdk agent turn 1: hi sdk");
    },
    STEP,
  );

  it(
    "(d) a TypeScript Connect client built from @podium-agents/client/proto alone calls the live server",
    async () => {
      const tsc = await run(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.connect.json"], { cwd: consumer, timeoutMs: STEP });
      expect({ code: tsc.code, out: tsc.stdout + tsc.stderr }).toEqual({ code: 0, out: "" });
      const out = await runJson(process.execPath, ["out/connect-client.js", podium.url, API_KEY, "echo-py:1.0.0@local", "hello over connect"]);
      expect(out.reply).toBe("hello over connect");
      expect((out.types as string[]).at(-1)).toBe("turn.done");
    },
    STEP,
  );

  it(
    "@podium-agents/testing runs the agent on the installed @podium-agents/podium",
    async () => {
      const out = await runJson(process.execPath, ["testing.mjs", "sdk-agent"]);
      expect(out).toEqual({ text: "sdk agent turn 1: from the testing package", error: null, state: { turns: 1 } });
    },
    STEP,
  );
});
