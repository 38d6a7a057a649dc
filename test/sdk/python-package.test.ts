/**
 * The Python SDK as a package (sdk/python/pyproject.toml): `pip install ./sdk/python` into a fresh
 * venv, as an agent author would, then an agent runs on the installed copy — real processes, the
 * host protocol over the runner's pipes — and mypy --strict checks the installed package and a typed
 * agent against it (the package ships py.typed).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import path from "node:path";
import { AgentHarness, fixture, REPO_ROOT, replayState, type EventFrame } from "./agent-harness.js";
import { createPythonVenv, type PythonVenv } from "../helpers/python-venv.js";

const DIST = "podium-agents-sdk";
const TYPED_AGENT = fixture("py/typed_agent.py");

let venv: PythonVenv;
beforeAll(async () => {
  venv = await createPythonVenv([path.join(REPO_ROOT, "sdk/python"), "mypy"]);
}, 300_000);
afterAll(() => venv?.remove());

const open: AgentHarness[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((agent) => agent.close()));
});

it("installs stdlib-only, with py.typed, python -m podium_agent and the podium-agent-runner command", async () => {
  const probe = [
    "import importlib.metadata as m, json, podium_agent",
    `d = m.distribution(${JSON.stringify(DIST)})`,
    "print(json.dumps({'file': podium_agent.__file__, 'version': d.version, 'requires': d.requires,",
    "  'files': sorted(str(f) for f in d.files or [] if '__pycache__' not in str(f)),",
    "  'scripts': [e.name + '=' + e.value for e in d.entry_points if e.group == 'console_scripts']}))",
  ].join("\n");
  const { stdout, stderr, code } = await venv.run(venv.python, ["-c", probe], { cwd: venv.dir });
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
  const info = JSON.parse(stdout) as { file: string; version: string; requires: string[] | null; files: string[]; scripts: string[] };
  expect(info.file.startsWith(venv.dir)).toBe(true); // the installed copy, not the checkout
  expect(info.version).toBe("0.1.0");
  expect(info.requires).toBeNull(); // stdlib only at run time
  expect(info.files).toEqual(
    expect.arrayContaining(["podium_agent/__init__.py", "podium_agent/__main__.py", "podium_agent/context.py", "podium_agent/runner.py", "podium_agent/tracked_state.py", "podium_agent/py.typed"]),
  );
  expect(info.scripts).toEqual(["podium-agent-runner=podium_agent.__main__:run"]);
  expect(fs.existsSync(venv.bin("podium-agent-runner"))).toBe(true);
});

it("says what it is when started without a host (no fd 3)", async () => {
  const { code, stderr } = await venv.run(venv.python, ["-m", "podium_agent", TYPED_AGENT], { cwd: venv.dir });
  expect(code).toBe(2);
  expect(stderr).toContain("usage: python -m podium_agent");
});

describe.each([
  ["python -m podium_agent", (): [string, string[]] => [venv.python, ["-m", "podium_agent", TYPED_AGENT]]],
  ["podium-agent-runner", (): [string, string[]] => [venv.bin("podium-agent-runner"), [TYPED_AGENT]]],
])("%s", (_name, argv) => {
  it("runs an agent on the installed SDK: init, ready, a turn's events, an answered ask, stop", async () => {
    const agent = AgentHarness.spawn({ runtime: "python", entry: TYPED_AGENT, command: argv() });
    open.push(agent);
    const ready = await agent.start({}, 30_000);
    expect(ready).toEqual({ type: "ready", protocol: 1, runtime: "python", sdk: expect.stringContaining("podium-py") });

    const first = await agent.turn(1, { text: "hello installed sdk" }, 30_000);
    expect(first.done).toEqual({ type: "turn_done", turn: 1 });
    expect(first.events.map((e) => [e.messageType, e.content?.text])).toEqual([
      ["stream_start", undefined],
      ["stream_update", "hello"],
      ["stream_update", "installed"],
      ["stream_update", "sdk"],
      ["stream_end", undefined],
    ]);
    expect(String(first.events[0]?.content?.sdk).startsWith(venv.dir)).toBe(true);

    // ctx.ask in a sync handler blocks until the host's answer and returns it.
    agent.send({ type: "message", turn: 2, content: { text: "ask" } });
    const asked = (await agent.waitFor((f) => f.type === "event" && f.messageType === "tool.question_requested", 30_000)) as EventFrame;
    expect(asked.content).toMatchObject({ question: "favourite colour?", choices: ["red", "blue"] });
    agent.send({ type: "answer", id: String(asked.content?.request_id), value: "red" });
    const done = await agent.waitFor((f) => f.type === "turn_done" && f.turn === 2, 30_000);
    expect(done).toEqual({ type: "turn_done", turn: 2 });
    expect(agent.frames.find((f) => f.type === "event" && f.turn === 2 && f.messageType === "stream_update")).toMatchObject({ content: { text: "you said red" } });

    expect(replayState({}, agent.frames)).toEqual({ turns: 2, agent: "agent-test", seen: ["hello", "installed", "sdk", "red"] });
    agent.send({ type: "stop", graceMs: 5000 });
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(agent.frames.at(-1)).toEqual({ type: "stopped" });
    expect(agent.badLines).toEqual([]);
  }, 60_000);
});

describe("mypy --strict", () => {
  const mypy = (args: string[]) => venv.run(venv.python, ["-m", "mypy", "--strict", "--cache-dir", path.join(venv.dir, "mypy-cache"), ...args], { cwd: venv.dir });

  it("passes on the installed package and on a typed agent that uses it", async () => {
    const pkg = await mypy(["-p", "podium_agent"]);
    expect(pkg.stdout + pkg.stderr).toMatch(/^Success: no issues found/m);
    expect(pkg.code).toBe(0);
    const agent = await mypy([TYPED_AGENT]);
    expect(agent.stdout + agent.stderr).toMatch(/^Success: no issues found in 1 source file/m);
  }, 120_000);

  it("rejects an agent that misuses ctx (the package's types are really checked)", async () => {
    const bad = path.join(venv.dir, "bad_agent.py");
    fs.writeFileSync(
      bad,
      [
        "from podium_agent import AgentContext, JsonObject",
        "async def on_message(ctx: AgentContext, message: JsonObject) -> None:",
        "    ctx.send(42)",
        "    answer: str = ctx.ask('colour?')",
        "    ctx.send('answer', {'value': ctx.ask_async('again?')})",
        "",
      ].join("\n"),
    );
    const result = await mypy([bad]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('Argument 1 to "send" of "AgentContext" has incompatible type "int"');
    expect(result.stdout).toMatch(/bad_agent.py:4: error: Incompatible types in assignment/);
    expect(result.stdout).toMatch(/bad_agent.py:5: error: .*Coroutine/);
  }, 120_000);
});
