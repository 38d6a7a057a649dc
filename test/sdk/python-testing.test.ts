/**
 * podium_agent.testing (sdk/python/podium_agent/testing.py), the harness a Python author's unittest
 * uses (what `podium init --runtime python` generates): real agents in their real runner process.
 * Turn text and events, state replayed from the agent's patches, a resumed state, a handler's
 * exception as turn.error, requests answered by `answer=` (and refused without it), an entry that fails
 * to import as AgentFailed, and the temporary workspace removed on close.
 */
import { describe, expect, it } from "@jest/globals";
import { execFile } from "node:child_process";
import path from "node:path";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

const SCRIPT = `
import json, os, sys
from podium_agent.testing import AgentFailed, start_agent
root = sys.argv[1]
out = {}
with start_agent(os.path.join(root, "examples/echo-py/agent.py")) as agent:
    first = agent.send({"text": "hello there"})
    out["echo"] = {"text": first.text, "types": [e.message_type for e in first.events], "error": first.error}
    agent.send({"text": "again"})
    out["echo_state"] = agent.state()
    workspace = agent.workspace
out["workspace_removed"] = not os.path.exists(workspace)
with start_agent(os.path.join(root, "examples/counter-py/agent.py"), state={"count": 41, "history": []}) as agent:
    turn = agent.send({"text": "up"})
    out["resumed"] = {"content": turn.events[0].content, "state": agent.state()}
with start_agent(os.path.join(root, "test/fixtures/bundles/faulty-py/agent.py")) as agent:
    out["faulty"] = [agent.send({"text": "boom"}).error, agent.send({"text": "x"}).text]
with start_agent(os.path.join(root, "test/sdk/fixtures/py/typed_agent.py")) as agent:
    asked = agent.send({"text": "ask"}, answer=lambda event: f"blue ({event.content['question']})")
    out["asked"] = {"text": asked.text, "seen": agent.state()["seen"]}
    try:
        agent.send({"text": "ask"})
    except AgentFailed as error:
        out["unanswered"] = str(error)
    out["after"] = agent.send({"text": "still serving"}).text
try:
    start_agent(os.path.join(root, "test/fixtures/bundles/broken-py/agent.py"))
except AgentFailed as error:
    out["broken"] = str(error)
print(json.dumps(out))
`;

describe("podium_agent.testing", () => {
  it("runs a Python agent turn by turn in its real runner", async () => {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile("python3", ["-c", SCRIPT, REPO_ROOT], { env: { ...process.env, PYTHONPATH: path.join(REPO_ROOT, "sdk/python") }, timeout: 60_000 }, (error, out, err) =>
        error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out),
      );
    });
    const result = JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
    expect(result.echo).toEqual({ text: "hello there", types: ["stream_start", "stream_update", "stream_update", "stream_end"], error: null });
    expect(result.echo_state).toEqual({ turns: 2 });
    expect(result.workspace_removed).toBe(true);
    expect(result.resumed).toEqual({ content: { text: "count = 42" }, state: { count: 42, history: ["up"] } });
    expect(result.faulty).toEqual([expect.stringContaining("kaboom"), "ok:x"]);
    expect(result.broken).toContain("ModuleNotFoundError");
    expect(result.asked).toEqual({ text: "you said blue (favourite colour?)", seen: ["blue (favourite colour?)"] });
    expect(result.unanswered).toBe("turn 2 sent tool.question_requested and waits for an answer: pass answer= to send()");
    expect(result.after).toBe("stillserving");
  }, 60_000);
});
