// @podium-agents/testing as an agent author uses it, on the installed @podium-agents/podium: a real
// gateway + coordinator in this process, the agent in a real Bun process.
//   node testing.mjs BUNDLE_DIR   -> one JSON line {text, error, state}
import { createTestPodium } from "@podium-agents/testing";

const podium = await createTestPodium({ sandbox: "none" });
try {
  const agent = await podium.start(process.argv[2]);
  const turn = await agent.send({ text: "from the testing package" });
  console.log(JSON.stringify({ text: turn.text, error: turn.error ?? null, state: await agent.state() }));
  await agent.stop();
} finally {
  await podium.close();
}
