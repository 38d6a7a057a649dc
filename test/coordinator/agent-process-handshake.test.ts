/**
 * The bwrap handshake of AgentProcess against a stand-in for bwrap (bash) that writes its info the way
 * bwrap does, in several writes: `{"child-pid": N`, then the namespace ids and `}`. Reading the pid must
 * not close fd 4 under it: a second write to a closed pipe killed bwrap with SIGPIPE, and its sandbox
 * then waited forever (seen in CI as a start that never became ready, with 0 ms of CPU used).
 */
import { describe, expect, it } from "@jest/globals";
import os from "node:os";
import { AgentProcess, type SandboxPids } from "../../services/coordinator/agent-process.js";

const FAKE_BWRAP = `
printf '{\\n    "child-pid": %d' $$ >&4
sleep 0.3
printf ',\\n    "net-namespace": 4026531840\\n}\\n' >&4
exec 4>&-
read -r -n 1 go <&5
echo "released $go"
`;

describe("AgentProcess bwrap handshake", () => {
  it("reads the child pid, runs prepare, lets the sandbox go, and bwrap lives through its last info writes", async () => {
    const output: string[] = [];
    const prepared: SandboxPids[] = [];
    const proc = new AgentProcess({
      command: "/bin/bash",
      args: ["-c", FAKE_BWRAP],
      cwd: os.tmpdir(),
      env: { PATH: "/usr/bin:/bin" },
      prepare: async (pids) => {
        prepared.push(pids);
      },
      onFrames: () => undefined,
      onOutput: (_stream, line) => output.push(line),
      onBadFrame: () => undefined,
    });
    const exit = await proc.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(prepared).toEqual([{ outer: proc.pid, sandbox: proc.pid }]);
    expect(output).toContain("released 1");
  }, 30_000);
});
