/**
 * An in-process Podium for agent authors' tests: the real gateway and coordinator (`podium dev`)
 * on a free port with a temporary data dir. Agents run as real processes exactly as in production.
 *
 *   const podium = await createTestPodium();
 *   const agent = await podium.start("./my-agent");
 *   const turn = await agent.send({ text: "hi" });
 *   expect(turn.text).toBe("hi");
 *   await podium.close();
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createDevServer, LocalRegistry, packBundle, silentLogger, type DevServer } from "@podium-agents/podium/dev";
import type { JsonObject } from "./json-types.js";
import { TestAgent } from "./test-agent.js";

export interface TestPodiumOptions {
  /** Keep data here instead of a temp dir (it is not removed on close). */
  dataDir?: string;
  /** "none" skips the bubblewrap sandbox (faster, less isolated); default "auto". */
  sandbox?: "auto" | "bwrap" | "none";
}

export interface StartOptions {
  agentId?: string;
  environment?: Record<string, string>;
  secrets?: Record<string, string>;
}

export class TestPodium {
  private readonly agents = new Set<TestAgent>();

  private constructor(
    private readonly server: DevServer,
    private readonly registry: LocalRegistry,
    private readonly ownedDir: string | undefined,
  ) {}

  static async create(options: TestPodiumOptions = {}): Promise<TestPodium> {
    const ownedDir = options.dataDir ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), "podium-test-"));
    const dataDir = options.dataDir ?? (ownedDir as string);
    const server = await createDevServer({ port: 0, dataDir, logger: silentLogger, coordinator: { sandbox: options.sandbox ?? "auto" } });
    return new TestPodium(server, new LocalRegistry({ dir: path.join(dataDir, "registry") }), ownedDir);
  }

  get url(): string {
    return this.server.url;
  }

  /** Packs and registers a bundle directory; returns its deployment id. */
  async deploy(bundleDir: string): Promise<string> {
    const { deployment } = await this.registry.upload(await packBundle(path.resolve(bundleDir)));
    return deployment.deploymentId;
  }

  /** Starts an instance of a bundle directory (deployed first) or of a deployment id. */
  async start(bundleDirOrDeploymentId: string, options: StartOptions = {}): Promise<TestAgent> {
    const deploymentId = fs.existsSync(bundleDirOrDeploymentId) ? await this.deploy(bundleDirOrDeploymentId) : bundleDirOrDeploymentId;
    const res = await fetch(`${this.url}/api/v1/instances`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ deployment_id: deploymentId, agent_id: options.agentId, environment: options.environment, secrets: options.secrets }),
    });
    const body = (await res.json()) as JsonObject;
    if (res.status !== 201) throw new Error(`could not start ${deploymentId}: ${JSON.stringify(body.error ?? body)}`);
    const agent = await TestAgent.connect(this.url, body);
    this.agents.add(agent);
    return agent;
  }

  async close(): Promise<void> {
    for (const agent of this.agents) agent.disconnect();
    await this.server.close();
    if (this.ownedDir) fs.rmSync(this.ownedDir, { recursive: true, force: true });
  }
}

export function createTestPodium(options?: TestPodiumOptions): Promise<TestPodium> {
  return TestPodium.create(options);
}
