/**
 * A runner that speaks another agent protocol version than its coordinator: the start fails at once with the
 * runner's own `fatal` message (both versions named), as FailedPrecondition, and the agent's log has it. The
 * real runners of both SDKs under a real AgentInstance and store; the coordinator's side of a version bump is
 * played by `sed`, which rewrites the version in the `init` line on its way to the runner (the runner stays
 * the process the instance spawned, so its exit and kill work as always).
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { AgentInstance } from "../../services/coordinator/agent-instance.js";
import { AGENT_PROTOCOL_VERSION } from "../../services/coordinator/agent-protocol.js";
import { DEFAULT_INSTANCE_LIMITS } from "../../services/coordinator/instance-limits.js";
import { agentCommand, REPO_ROOT, resolveRuntimeCommands, type AgentRuntime } from "../../services/coordinator/runtime-commands.js";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import { silentLogger } from "../../services/shared/logger.js";

const OTHER_VERSION = AGENT_PROTOCOL_VERSION + 1;
/** stdin of the runner goes through sed; sed keeps no other descriptor of the instance's (fd 3 is the runner's frames). */
const SHIM = `exec "$@" < <(exec sed -u '1s/"protocol":${AGENT_PROTOCOL_VERSION},/"protocol":${OTHER_VERSION},/' 2>/dev/null 3>&-)`;
const ENTRY: Record<AgentRuntime, string> = { typescript: "examples/echo-ts/agent.ts", python: "examples/echo-py/agent.py" };

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe.each(["typescript", "python"] as const)("a %s runner of another protocol version", (runtime) => {
  it("fails the start with the runner's fatal message, and the agent's log says it", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-protocol-mismatch-"));
    dirs.push(dir);
    const store = AgentStore.open({ dir: path.join(dir, "agent") });
    const workspace = path.join(dir, "workspace");
    fs.mkdirSync(workspace);
    const [runner, runnerArgs] = agentCommand(resolveRuntimeCommands(), runtime, path.join(REPO_ROOT, ENTRY[runtime]));
    const instance = new AgentInstance({
      instanceId: "inst-mismatch",
      agentId: "agent-mismatch",
      deploymentId: "echo:1.0.0@local",
      runtime,
      command: "/bin/bash",
      args: ["-c", SHIM, "bash", runner, ...runnerArgs],
      workspace,
      processEnv: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir },
      agentEnv: {},
      store,
      limits: DEFAULT_INSTANCE_LIMITS,
      logger: silentLogger,
    });
    try {
      const err = await instance.start().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
      const sdk = runtime === "python" ? "podium-py/" : "podium-ts/";
      expect((err as ConnectError).rawMessage).toMatch(
        new RegExp(`^agent failed to start: .*agent protocol mismatch: the host speaks version ${OTHER_VERSION}, ${sdk}\\S+ speaks version ${AGENT_PROTOCOL_VERSION};`),
      );
      await instance.ended;
      expect(instance.live).toBe(false);
      const logged = store.logs.list(0, 1000).find((row) => row.source === "agent" && row.message.startsWith("agent failed: "));
      expect(logged?.message).toContain(`the host speaks version ${OTHER_VERSION}`);
    } finally {
      store.close();
    }
  }, 60_000);
});
