/**
 * The coordinator core for unit tests: a real InstanceManager behind the real coordinator routes, mounted on
 * `createRouterTransport` (no socket), with fake agent processes (test/helpers/fake-agent-process.ts) and
 * real SQLite stores in a temp dir, opened without a sandbox. One deployment, whose podium.json is given.
 */
import { afterAll, afterEach } from "@jest/globals";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { coordinatorRoutes } from "../../services/coordinator/coordinator-routes.js";
import { InstanceManager } from "../../services/coordinator/instance-manager.js";
import type { AgentStoreFactory } from "../../services/coordinator/instance-factories.js";
import type { InstanceLimits } from "../../services/coordinator/instance-limits.js";
import type { WorkspaceCapture } from "../../services/coordinator/agent-instance-options.js";
import { AgentSandboxes } from "../../services/coordinator/sandbox/agent-sandboxes.js";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import { StoreTemplate } from "../../services/coordinator/store-template.js";
import type { DeploymentRecord, DeploymentRegistry } from "../../services/registry/deployment-registry.js";
import { BundleCache } from "../../services/registry/bundle-cache.js";
import { silentLogger } from "../../services/shared/logger.js";
import type { JsonObject } from "../../services/shared/json.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { CoordinatorService } from "../../gen/podium/v1/coordinator_service_pb.js";
import type { StreamUpdate } from "../../gen/podium/v1/stream_update_pb.js";
import { fakeProcessFactory, type FakeAgentOptions, type FakeProcessFactory } from "../helpers/fake-agent-process.js";

export const DEPLOYMENT_ID = "fake:1.0.0@local";

export interface CoreHarnessOptions {
  /** podium.json fields beside name, version, runtime and entry (limits, on_busy, schedules). */
  manifest?: JsonObject;
  /** The coordinator's default limits. */
  limits?: Partial<InstanceLimits>;
  fake?: FakeAgentOptions;
  capacity?: number;
  /** Each agent's workspace capture (none by default). */
  workspaceCapture?: WorkspaceCapture;
}

export interface CoreHarness {
  manager: InstanceManager;
  instances: Client<typeof InstanceService>;
  coordinator: Client<typeof CoordinatorService>;
  fakes: FakeProcessFactory;
  /** Creates an instance of the deployment; resolves with its id. */
  create(agentId?: string): Promise<string>;
  /** Resolves with the updates up to and including the first that `until` accepts (replay, then live). */
  updatesUntil(instanceId: string, until: (update: StreamUpdate) => boolean): Promise<StreamUpdate[]>;
  close(): Promise<void>;
}

/** Empty databases made once per test file and copied for each new agent, as openAgent does. */
const templateDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-core-template-"));
const template = new StoreTemplate(templateDir, silentLogger);
afterAll(() => fs.rmSync(templateDir, { recursive: true, force: true }));

/** Opens an agent's real databases and workspace directory in its agent dir, without a sandbox. */
const unsandboxedStores =
  (workspaceCapture: WorkspaceCapture | undefined): AgentStoreFactory =>
  async (request) => {
    const workspace = path.join(request.agentDir, "workspace");
    const home = path.join(request.agentDir, "home");
    for (const dir of [workspace, home]) fs.mkdirSync(dir, { recursive: true });
    await template.seed(request.agentDir);
    const store = AgentStore.open({ dir: request.agentDir });
    const launch = { command: request.command, args: request.args, workspace, home, cpuUsageMicros: () => undefined, exitReason: () => undefined, release: async () => undefined };
    return { launch, store, workspaceCapture: workspaceCapture ? { ...workspaceCapture, close: () => undefined } : undefined, processEnv: {} };
  };

function deploymentWith(bundles: string, fields: JsonObject): DeploymentRegistry {
  const manifest = { name: "fake", version: "1.0.0", runtime: "typescript", entry: "agent.ts", ...fields };
  const hex = createHash("sha256").update(JSON.stringify(manifest)).digest("hex");
  // What the bundle cache extracted before: materialize() finds it in place.
  fs.mkdirSync(path.join(bundles, hex), { recursive: true });
  fs.writeFileSync(path.join(bundles, hex, "podium.json"), JSON.stringify(manifest));
  const record: DeploymentRecord = {
    deploymentId: DEPLOYMENT_ID,
    name: "fake",
    version: "1.0.0",
    runtime: "typescript",
    entry: "agent.ts",
    digest: `sha256:${hex}`,
    size: 0,
    createdAt: Date.now(),
    registry: "local",
  };
  const readOnly = () => Promise.reject(new ConnectError("the test registry is read-only", Code.Unimplemented));
  return { name: "local", upload: readOnly, readArchive: readOnly, get: async (id) => (id === DEPLOYMENT_ID ? record : undefined), list: async () => [record] };
}

export function coreHarness(options: CoreHarnessOptions = {}): CoreHarness {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-core-"));
  const registry = deploymentWith(path.join(dataDir, "bundles"), options.manifest ?? {});
  const fakes = fakeProcessFactory(options.fake);
  const missing = path.join(dataDir, "no-runtime");
  const manager = new InstanceManager({
    coordinatorId: "coord-unit",
    dataDir,
    registry,
    bundles: new BundleCache({ dir: path.join(dataDir, "bundles"), registry }),
    commands: { bun: missing, python: missing, pythonPrefix: missing, pythonFlags: [], tsRunner: missing, pyRunner: path.join(missing, "runner.py") },
    ...(options.limits ? { limits: options.limits } : {}),
    logger: silentLogger,
    agentPath: "/usr/bin:/bin",
    capacity: options.capacity ?? 8,
    endedRetentionMs: 60_000,
    // Never used to launch (the store factory opens no sandbox): the manager sweeps left-overs through it.
    sandboxes: new AgentSandboxes({ coordinatorId: "coord-unit", dataDir, mode: "none", cgroups: false, volumes: false, logger: silentLogger }),
    warmRunners: 0,
    processFactory: fakes.factory,
    storeFactory: unsandboxedStores(options.workspaceCapture),
  });
  const transport = createRouterTransport(coordinatorRoutes({ manager, address: "in-memory", startedAt: Date.now(), version: "test" }));
  const instances = createClient(InstanceService, transport);
  const updatesUntil = async (instanceId: string, until: (update: StreamUpdate) => boolean) => {
    const seen: StreamUpdate[] = [];
    const abort = new AbortController();
    try {
      for await (const response of instances.streamUpdates({ instanceId, replayAll: true }, { signal: abort.signal })) {
        for (const update of response.updates) {
          seen.push(update);
          if (until(update)) return seen;
        }
      }
    } finally {
      abort.abort();
    }
    return seen;
  };
  return {
    manager,
    instances,
    coordinator: createClient(CoordinatorService, transport),
    fakes,
    async create(agentId) {
      const { instance } = await instances.createInstance({ deploymentId: DEPLOYMENT_ID, ...(agentId ? { agentId } : {}) });
      if (!instance) throw new Error("createInstance returned no instance");
      return instance.instanceId;
    },
    updatesUntil,
    async close() {
      await manager.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** For a test file: makes harnesses (coreHarness) that are all closed after each test. */
export function harnessesPerTest(): (options?: CoreHarnessOptions) => CoreHarness {
  const open: CoreHarness[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((h) => h.close()));
  });
  return (options = {}) => {
    const h = coreHarness(options);
    open.push(h);
    return h;
  };
}
