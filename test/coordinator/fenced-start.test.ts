/**
 * An instance whose agent's lease is already gone when it starts (a coordinator starved between taking
 * the lease and spawning the agent): its first write fences it, and the start fails instead of leaving a
 * ready instance that can run nothing. A real agent process (bun + the TypeScript runner, no sandbox)
 * and a real store.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { AgentInstance } from "../../services/coordinator/agent-instance.js";
import { DEFAULT_INSTANCE_LIMITS } from "../../services/coordinator/instance-limits.js";
import { agentCommand, REPO_ROOT, resolveRuntimeCommands } from "../../services/coordinator/runtime-commands.js";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import { silentLogger } from "../../services/shared/logger.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe("an instance fenced before it started", () => {
  it("fails its start with Unavailable, ends its process, and records nothing", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-fenced-start-"));
    dirs.push(dir);
    const store = AgentStore.open({ dir: path.join(dir, "agent") });
    // An acknowledged message the previous instance never ran: the start writes for it first.
    store.messages.append({ direction: "inbound", instanceId: "inst-old", turn: 1, messageType: "process_message", content: { text: "queued" }, timestamp: Date.now() });
    const workspace = path.join(dir, "workspace");
    fs.mkdirSync(workspace);
    const [command, args] = agentCommand(resolveRuntimeCommands(), "typescript", path.join(REPO_ROOT, "examples/echo-ts/agent.ts"));
    const instance = new AgentInstance({
      instanceId: "inst-fenced",
      agentId: "agent-fenced",
      deploymentId: "echo-ts:1.0.0@local",
      runtime: "typescript",
      command,
      args,
      workspace,
      processEnv: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir },
      agentEnv: {},
      store,
      limits: DEFAULT_INSTANCE_LIMITS,
      logger: silentLogger,
      mayWrite: () => false, // the lease is gone
    });
    try {
      const err = await instance.start().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
      expect((err as ConnectError).rawMessage).toMatch(/^instance inst-fenced was stopped: this coordinator lost the agent's single-writer lease/);
      await instance.ended;
      expect(instance.live).toBe(false);
      expect(store.messages.lastSeq()).toBe(1);
    } finally {
      store.close();
    }
  }, 60_000);
});
