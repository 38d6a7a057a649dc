/**
 * `podium init` (services/cli/init-command.ts) as an author uses it: `node bin/podium.js init` writes a
 * bundle for each runtime into a temp dir; each is deployed (the CLI's own deploy) to a live in-process
 * Podium and answers, on a cold runner and on a warm one (a runner spawned before its entry was known):
 * the TypeScript agent imports "@podium-agents/sdk" and the Python one `podium_agent`, with no
 * node_modules in the sandbox. The generated tests pass (node:test + @podium-agents/testing through
 * tsx; unittest + podium_agent.testing), the TypeScript agent passes its strict tsc, and command
 * lines that cannot run are refused clearly.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import ts from "typescript";
import { deploy } from "../../services/cli/deploy-command.js";
import { DirectoryNotEmptyError, initBundle, runInit } from "../../services/cli/init-command.js";
import { UsageError } from "../../services/cli/usage-error.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import type { BundleRuntime } from "../../services/registry/bundle-manifest.js";
import type { JsonObject } from "../../services/shared/json.js";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";

const BIN = path.join(REPO_ROOT, "bin/podium.js");
const SLOW = 120_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, timeout: SLOW, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const podiumCli = (args: string[], cwd?: string) => run(process.execPath, [BIN, ...args], cwd ? { cwd } : {});

let tmp: string;
let dev: DevFixture | undefined;
const bundles: Record<BundleRuntime, string> = { typescript: "", python: "" };

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "podium-init-"));
  for (const [runtime, flag] of [
    ["typescript", "ts"],
    ["python", "python"],
  ] as const) {
    const made = await podiumCli(["init", `hello-${flag}`, "--runtime", flag], tmp);
    expect(made).toMatchObject({ code: 0, stderr: "" });
    expect(made.stdout).toContain(`created ${runtime} agent "hello-${flag}"`);
    bundles[runtime] = path.join(tmp, `hello-${flag}`);
  }
}, SLOW);

afterAll(async () => {
  await dev?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("podium init", () => {
  it("writes a bundle per runtime: manifest, agent, test, README", () => {
    expect(fs.readdirSync(bundles.typescript).sort()).toEqual([".gitignore", "README.md", "agent.test.ts", "agent.ts", "package.json", "podium.json", "tsconfig.json"]);
    expect(fs.readdirSync(bundles.python).sort()).toEqual([".gitignore", "README.md", "agent.py", "podium.json", "test_agent.py"]);
    expect(JSON.parse(fs.readFileSync(path.join(bundles.typescript, "podium.json"), "utf8"))).toEqual({ name: "hello-ts", version: "0.1.0", runtime: "typescript", entry: "agent.ts" });
    expect(JSON.parse(fs.readFileSync(path.join(bundles.python, "podium.json"), "utf8"))).toEqual({ name: "hello-python", version: "0.1.0", runtime: "python", entry: "agent.py" });
    expect(fs.readFileSync(path.join(bundles.typescript, "agent.ts"), "utf8")).toContain('import { defineAgent } from "@podium-agents/sdk"');
    expect(fs.readFileSync(path.join(bundles.typescript, "agent.test.ts"), "utf8")).toContain('from "@podium-agents/testing"');
  });

  it(
    "deploys each bundle to a live Podium, where it answers on a cold and on a warm runner",
    async () => {
      dev = await startDevFixture({ agentsDir: fs.mkdtempSync(path.join(tmp, "none-")), coordinator: { warmRunners: 1 } });
      const fixture = dev;
      const stats = () => fixture.server.coordinator.manager.warmRunnerStats();
      for (const runtime of ["typescript", "python"] as const) {
        const { deployment_id: deploymentId } = await deploy({ dir: bundles[runtime], url: fixture.url, apiKey: API_KEY, write: () => undefined });
        const answer = async (text: string): Promise<string> => {
          const created = await fixture.api("POST", "/api/v1/instances", { deployment_id: deploymentId });
          expect(created.status).toBe(201);
          const ws = await fixture.connect(created.json.instance_id as string);
          ws.send({ type: "process_message", content: { text } });
          await ws.waitFor((f) => f.messageType === "turn.done", 60_000);
          const updates = ws.frames.filter((f) => f.messageType === "stream_update").map((f) => (f.content as JsonObject).text);
          ws.close();
          return updates.join("");
        };
        expect(await answer("cold")).toBe("You said: cold"); // the runtime's first create starts cold and fills its pool
        const deadline = Date.now() + 60_000;
        while (stats().ready[runtime] < 1) {
          if (Date.now() > deadline) throw new Error(`no warm ${runtime} runner: ${JSON.stringify(stats())}`);
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        const claims = stats().claims;
        expect(await answer("warm")).toBe("You said: warm");
        expect(stats().claims).toBe(claims + 1);
      }
    },
    SLOW,
  );

  it(
    "the generated tests pass: the TypeScript one on @podium-agents/testing, the Python one on podium_agent.testing",
    async () => {
      const tsConfig = writeCheckConfig(bundles.typescript);
      const tsTest = await run(process.execPath, [path.join(REPO_ROOT, "node_modules/tsx/dist/cli.mjs"), "--test", "agent.test.ts"], {
        cwd: bundles.typescript,
        env: { TSX_TSCONFIG_PATH: tsConfig },
      });
      // The whole output when it fails: a non-zero exit after "# pass 1" (seen once in CI) says why only there.
      if (tsTest.code !== 0) throw new Error(`tsx --test agent.test.ts exited ${tsTest.code}:\n${tsTest.stdout}\n${tsTest.stderr}`);
      expect(tsTest.stdout + tsTest.stderr).toContain("# pass 1");
      const pyTest = await run("python3", ["-m", "unittest", "-v"], { cwd: bundles.python, env: { PYTHONPATH: path.join(REPO_ROOT, "sdk/python") } });
      expect({ code: pyTest.code, err: pyTest.stderr }).toMatchObject({ code: 0, err: expect.stringContaining("test_answers_and_counts_turns") });
    },
    SLOW,
  );

  it(
    "the TypeScript agent passes the project's own strict tsc",
    async () => {
      // The agent only: the test imports the harness, whose sources would have tsc check all of Podium (~10 s).
      const config = writeCheckConfig(bundles.typescript, ["agent.ts"]);
      const checked = await run(process.execPath, [path.join(REPO_ROOT, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", config], { cwd: bundles.typescript });
      expect({ code: checked.code, out: checked.stdout }).toEqual({ code: 0, out: "" });
    },
    SLOW,
  );

  it(
    "refuses a bad runtime with the usage, listing the choices (exit 2)",
    async () => {
      const bad = await podiumCli(["init", "x", "--runtime", "rust"], tmp);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--runtime must be one of ts, typescript, python, py (got "rust")');
      expect(bad.stderr).toContain("podium init DIR [--runtime ts|python]");
      expect(fs.existsSync(path.join(tmp, "x"))).toBe(false);
    },
    SLOW,
  );

  it("refuses a non-empty directory unless --force, which keeps other files", () => {
    const dir = path.join(tmp, "busy");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "notes.txt"), "mine");
    expect(() => initBundle({ dir, runtime: "python" })).toThrow(DirectoryNotEmptyError);
    expect(() => initBundle({ dir, runtime: "python" })).toThrow(/already exists and is not empty; pass --force/);
    expect(fs.readdirSync(dir)).toEqual(["notes.txt"]);
    const result = initBundle({ dir, runtime: "python", force: true });
    expect(result.files).toContain("agent.py");
    expect(fs.readFileSync(path.join(dir, "notes.txt"), "utf8")).toBe("mine");
    expect(initBundle({ dir: path.join(tmp, "empty-ok"), runtime: "typescript" }).name).toBe("empty-ok");
  });

  it("refuses a name that is not a valid agent name, and takes --name instead of the directory's", () => {
    const out: string[] = [];
    expect(() => runInit([path.join(tmp, "Bad Name")], (t) => out.push(t))).toThrow(UsageError);
    expect(() => runInit([path.join(tmp, "Bad Name")], (t) => out.push(t))).toThrow(/"Bad Name" is not a valid agent name: .* pass --name NAME/);
    expect(() => runInit([path.join(tmp, "ok"), "--name=-dash"], (t) => out.push(t))).toThrow(/"-dash" is not a valid agent name/);
    expect(() => runInit([], (t) => out.push(t))).toThrow(/init needs a directory/);
    expect(runInit([path.join(tmp, "Fine Dir"), "--name", "fine", "-r", "py"], (t) => out.push(t))).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, "Fine Dir", "podium.json"), "utf8"))).toMatchObject({ name: "fine", runtime: "python" });
    expect(out.join("")).toContain("python3 -m unittest");
  });
});

/**
 * A tsconfig beside the generated one that resolves the @podium-agents packages to this repository's
 * sources (an author gets them from npm): the root tsconfig's `paths` plus the SDK and the harness.
 */
function writeCheckConfig(dir: string, files?: string[]): string {
  const root = ts.readConfigFile(path.join(REPO_ROOT, "tsconfig.json"), ts.sys.readFile).config as { compilerOptions?: { paths?: Record<string, string[]> } };
  const paths: Record<string, string[]> = {};
  for (const [name, targets] of Object.entries(root.compilerOptions?.paths ?? {})) paths[name] = targets.map((t) => path.resolve(REPO_ROOT, t));
  paths["@podium-agents/sdk"] = [path.join(REPO_ROOT, "sdk/typescript/src/index.ts")];
  paths["@podium-agents/testing"] = [path.join(REPO_ROOT, "packages/testing/src/index.ts")];
  const file = path.join(dir, files ? "tsconfig.agent.json" : "tsconfig.check.json");
  const config = { extends: "./tsconfig.json", compilerOptions: { typeRoots: [path.join(REPO_ROOT, "node_modules/@types")], paths }, ...(files ? { include: files } : {}) };
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}
