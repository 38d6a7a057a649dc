/**
 * AgentSandboxes.launch() with real bubblewrap, slirp4netns, cgroups and volumes: a launch released
 * without its process ever starting (a create that failed or was cancelled between the launch and the
 * spawn) frees everything, and its egress, which waited for a sandbox that never came, does not become
 * an unhandled rejection, which ends a Node process (the coordinator with every agent on it). Run in a
 * child process, where Node's own unhandled-rejection handling applies.
 */
import { describe, expect, it } from "@jest/globals";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

const root = process.getuid?.() === 0;
const missing = ["bwrap", "slirp4netns", "nft", "perl"].filter((tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);
const withTools = root && missing.length === 0 ? describe : describe.skip;

const SCRIPT = `
import path from "node:path";
import { AgentSandboxes } from "./services/coordinator/sandbox/agent-sandboxes.ts";
import { DEFAULT_INSTANCE_LIMITS } from "./services/coordinator/instance-limits.ts";
import { silentLogger } from "./services/shared/logger.ts";
const dataDir = process.env.DATA_DIR;
const sandboxes = new AgentSandboxes({ coordinatorId: "launch-test", dataDir, mode: "bwrap", logger: silentLogger, uidRange: { first: 619000100, last: 619000109 } });
const launch = await sandboxes.launch({ agentId: "never-started", instanceId: "inst-never", agentDir: path.join(dataDir, "agents", "never-started"), command: "/bin/true", args: [], readOnly: [], limits: DEFAULT_INSTANCE_LIMITS, network: "egress" });
console.log("beforeInit", launch.beforeInit !== undefined);
await launch.release();
await new Promise((resolve) => setTimeout(resolve, 300));
await sandboxes.close();
console.log("released");
`;

withTools("a sandbox launch released before its process started", () => {
  it("frees the launch; its pending egress is not an unhandled rejection", () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-launch-"));
    fs.chmodSync(dataDir, 0o711);
    try {
      const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", SCRIPT], {
        cwd: REPO_ROOT,
        env: { ...process.env, NODE_OPTIONS: "", DATA_DIR: dataDir },
        encoding: "utf8",
        timeout: 60_000,
      });
      expect({ status: run.status, stdout: run.stdout.trim().split("\n"), stderr: run.stderr.split("\n").filter((l) => /Error|unhandled/i.test(l)) }).toEqual({
        status: 0,
        stdout: ["beforeInit true", "released"],
        stderr: [],
      });
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
