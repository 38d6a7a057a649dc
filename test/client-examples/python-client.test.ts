/**
 * Clients from the protos outside the repository (docs/clients.md), run as the docs say: the
 * documented commands are read from docs/clients.md and run in an empty temp project with $PODIUM
 * pointing at this checkout. A grpcio client generated there creates an instance on a real dev
 * server and streams its reply; the copied buf.gen.yaml generates the TypeScript client.
 */
import { afterAll, beforeAll, expect, it } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { createPythonVenv, type PythonVenv } from "../helpers/python-venv.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

const TESTED = "<!-- tested: test/client-examples/python-client.test.ts runs this block as it is -->";

/** The sh blocks that docs/clients.md marks as run by this test, in order. */
function documentedCommands(): string[] {
  const doc = fs.readFileSync(path.join(REPO_ROOT, "docs/clients.md"), "utf8");
  return doc
    .split(TESTED)
    .slice(1)
    .map((after) => /^\s*```sh\n([\s\S]*?)```/.exec(after)?.[1] ?? "");
}

function walk(dir: string, from = dir): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name), from) : [path.relative(from, path.join(dir, e.name))]));
}

let podium: DevFixture;
let venv: PythonVenv;
let project: string;
beforeAll(async () => {
  project = fs.mkdtempSync(path.join(os.tmpdir(), "podium-client-project-"));
  [podium, venv] = await Promise.all([startDevFixture(), createPythonVenv(["grpcio", "grpcio-tools"])]);
  fs.symlinkSync(venv.dir, path.join(project, ".venv"));
}, 300_000);
afterAll(async () => {
  await podium?.close();
  venv?.remove();
  if (project) fs.rmSync(project, { recursive: true, force: true });
});

function sh(script: string, cwd: string) {
  return venv.run("bash", ["-euo", "pipefail", "-c", script], { cwd, env: { PODIUM: REPO_ROOT } });
}

it("docs/clients.md has the commands this test runs", () => {
  const [python, buf] = documentedCommands();
  expect(python).toContain("grpc_tools.protoc");
  expect(buf).toContain("buf generate");
});

it("generates the Python client of podium/v1 only and streams an agent's reply through grpcio", async () => {
  const dir = path.join(project, "python");
  fs.mkdirSync(dir);
  fs.symlinkSync(venv.dir, path.join(dir, ".venv"));
  const generated = await sh(documentedCommands()[0] ?? "", dir);
  expect(generated).toMatchObject({ code: 0, stderr: "" });
  const files = walk(dir).filter((f) => !f.startsWith(".venv"));
  expect(files).toEqual(expect.arrayContaining(["podium/v1/instance_service_pb2.py", "podium/v1/instance_service_pb2.pyi", "podium/v1/instance_service_pb2_grpc.py"]));
  expect(files.filter((f) => !f.startsWith("podium/v1/"))).toEqual([]); // no grpc/ shadowing grpcio, no google/

  fs.copyFileSync(path.join(REPO_ROOT, "examples/clients/python_client.py"), path.join(dir, "python_client.py"));
  const target = new URL(podium.url).host;
  const client = await venv.run(venv.python, ["python_client.py", target, "hello from python"], {
    cwd: dir,
    env: { PODIUM_API_KEY: API_KEY, PODIUM_DEPLOYMENT: "echo-py:1.0.0@local" },
    timeoutMs: 90_000,
  });
  expect(client).toMatchObject({ code: 0, stderr: "" });
  expect(client.stdout).toMatch(/^created inst-\S+ \(agent agent-\S+\)$/m);
  expect(client.stdout).toMatch(/ stream_start /);
  expect(client.stdout).toMatch(/ turn\.done /);
  expect(client.stdout).toContain("reply: hello from python");
  expect((await podium.api("GET", "/api/v1/instances")).json.instances).toEqual([]);
}, 120_000);

it("buf.gen.yaml copied into an empty project generates the TypeScript client of podium/v1 only", async () => {
  const dir = path.join(project, "ts");
  fs.mkdirSync(dir);
  // The project's own npm install of @bufbuild/buf and @bufbuild/protoc-gen-es, borrowed from this checkout.
  fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(dir, "node_modules"));
  const generated = await sh(documentedCommands()[1] ?? "", dir);
  expect(generated).toMatchObject({ code: 0, stderr: "" });
  const files = walk(path.join(dir, "gen"));
  expect(files).toEqual(expect.arrayContaining(["ts/podium/v1/instance_service_pb.ts", "ts/podium/v1/stream_update_pb.ts"]));
  expect(files.filter((f) => !f.startsWith("ts/podium/v1/"))).toEqual([]);
}, 60_000);
