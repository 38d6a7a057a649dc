/**
 * The files `podium init` writes (init-command.ts), per runtime. Each is a small, runnable agent that
 * streams "You said: <text>" back and counts its turns, with a test through the runtime's harness:
 * `@podium-agents/testing` (a real in-process Podium) for TypeScript, `podium_agent.testing` (the
 * real runner process, stdlib unittest) for Python. test/cli/init-command.test.ts deploys both and
 * runs their tests, and type-checks the TypeScript one strictly.
 */
import type { BundleRuntime } from "../registry/bundle-manifest.js";

export interface TemplateParams {
  /** The agent's name (podium.json `name`). */
  name: string;
  /** The version of the @podium-agents packages to depend on. */
  version: string;
  /** Absolute path of the Python SDK (sdk/python), for the README's test command. */
  pythonSdkDir: string;
}

/** File name (relative to the bundle) -> contents. */
export type TemplateFiles = Record<string, string>;

function manifest(name: string, runtime: BundleRuntime, entry: string): string {
  return JSON.stringify({ name, version: "0.1.0", runtime, entry }, null, 2) + "\n";
}

const TS_AGENT = `// A Podium agent: answers each message by streaming its text back, and counts its turns in ctx.state.
import { defineAgent } from "@podium-agents/sdk";

interface State {
  turns: number;
}

// defineAgent<State, Events, Message>: Events adds event types of your own to the predeclared ones
// (stream_update, tool.call, thinking.progress, usage, ...), which ctx.send is checked against.
export default defineAgent<State>({
  initialState: { turns: 0 },

  async onMessage(ctx, message) {
    ctx.state.turns += 1; // recorded as a JSON Patch delta automatically
    const text = typeof message.text === "string" ? message.text : "";
    ctx.send("stream_start", { turn: ctx.turn });
    ctx.send("stream_update", { text: \`You said: \${text}\` });
    ctx.send("stream_end");
  },
});
`;

const TS_TEST = `// Runs the agent on a real Podium started in this process (gateway + coordinator, port 0): npm test
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createTestPodium, type TestPodium } from "@podium-agents/testing";

const bundleDir = fileURLToPath(new URL(".", import.meta.url));
let podium: TestPodium;

before(async () => {
  podium = await createTestPodium();
});

after(async () => {
  await podium.close();
});

test("answers a message and counts its turns", async () => {
  const agent = await podium.start(bundleDir); // deploys this directory, starts an instance
  const turn = await agent.send({ text: "hello" }); // resolves when the turn is done
  assert.equal(turn.error, undefined);
  assert.equal(turn.text, "You said: hello");
  assert.deepEqual(await agent.state(), { turns: 1 });
  await agent.stop();
});
`;

const TS_CONFIG = `{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "lib": ["ES2023"],
    "types": ["node"],
    "strict": true,
    "noEmit": true,
    "skipLibCheck": true,
    "isolatedModules": true,
    "verbatimModuleSyntax": true
  },
  "include": ["*.ts"]
}
`;

function tsPackage(p: TemplateParams): string {
  const range = `^${p.version}`;
  const pkg = {
    name: p.name,
    version: "0.1.0",
    private: true,
    type: "module",
    scripts: { test: "tsx --test agent.test.ts", typecheck: "tsc --noEmit", deploy: "podium deploy ." },
    devDependencies: {
      "@podium-agents/podium": range,
      "@podium-agents/sdk": range,
      "@podium-agents/testing": range,
      "@types/node": "^20.19.0",
      tsx: "^4.20.0",
      typescript: "^5.9.0",
    },
  };
  return JSON.stringify(pkg, null, 2) + "\n";
}

function tsReadme(p: TemplateParams): string {
  return `# ${p.name}

A Podium agent in TypeScript, made by \`podium init\`.

| file | what |
|---|---|
| \`podium.json\` | the bundle manifest: name, version, runtime, entry |
| \`agent.ts\` | the agent: \`defineAgent\` types \`ctx.state\` and checks \`ctx.send(type, content)\` |
| \`agent.test.ts\` | its test, on a real Podium in the test process (\`@podium-agents/testing\`) |

\`\`\`sh
npm install
npm test                 # node:test through tsx
npm run typecheck        # strict tsc
npx podium deploy . --url http://127.0.0.1:7070
\`\`\`

Podium runs \`agent.ts\` with Bun; \`@podium-agents/sdk\` resolves to the SDK of the Podium that runs it,
so the bundle needs no node_modules. The agent API: the Podium repository's sdk/README.md.
`;
}

const PY_AGENT = `"""A Podium agent: answers each message by streaming its text back, and counts its turns in ctx.state."""

from __future__ import annotations

from podium_agent import AgentContext

initial_state = {"turns": 0}


def on_message(ctx: AgentContext, message: dict[str, object]) -> None:
    ctx.state["turns"] += 1  # recorded as a JSON Patch delta automatically
    text = message.get("text")
    ctx.send("stream_start", {"turn": ctx.turn})
    ctx.send("stream_update", {"text": f"You said: {text if isinstance(text, str) else ''}"})
    ctx.send("stream_end")
`;

const PY_TEST = `"""Runs the agent in its real runner process, one call per turn: python3 -m unittest"""

import os
import unittest

from podium_agent.testing import start_agent

AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent.py")


class AgentTest(unittest.TestCase):
    def test_answers_and_counts_turns(self) -> None:
        with start_agent(AGENT) as agent:
            turn = agent.send({"text": "hello"})
            self.assertIsNone(turn.error)
            self.assertEqual(turn.text, "You said: hello")
            self.assertEqual(agent.state(), {"turns": 1})


if __name__ == "__main__":
    unittest.main()
`;

function pyReadme(p: TemplateParams): string {
  return `# ${p.name}

A Podium agent in Python, made by \`podium init\`.

| file | what |
|---|---|
| \`podium.json\` | the bundle manifest: name, version, runtime, entry |
| \`agent.py\` | the agent (stdlib only; \`podium_agent\` is there when Podium runs it) |
| \`test_agent.py\` | its test: \`podium_agent.testing\` runs the agent in its real runner process |

\`\`\`sh
PYTHONPATH=${p.pythonSdkDir} python3 -m unittest    # or: pip install <podium>/sdk/python
npx podium deploy . --url http://127.0.0.1:7070
\`\`\`

The agent API: the Podium repository's sdk/README.md.
`;
}

/** The files of a new bundle of `runtime`. */
export function templateFiles(runtime: BundleRuntime, p: TemplateParams): TemplateFiles {
  if (runtime === "typescript") {
    return {
      "podium.json": manifest(p.name, runtime, "agent.ts"),
      "agent.ts": TS_AGENT,
      "agent.test.ts": TS_TEST,
      "package.json": tsPackage(p),
      "tsconfig.json": TS_CONFIG,
      ".gitignore": "node_modules/\n",
      "README.md": tsReadme(p),
    };
  }
  return {
    "podium.json": manifest(p.name, runtime, "agent.py"),
    "agent.py": PY_AGENT,
    "test_agent.py": PY_TEST,
    ".gitignore": "__pycache__/\n",
    "README.md": pyReadme(p),
  };
}
