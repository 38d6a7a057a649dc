export { createTestPodium, TestPodium, type StartOptions, type TestPodiumOptions } from "./test-podium.js";
export { TestAgent, type TestEvent, type TurnResult } from "./test-agent.js";
export type { Json, JsonObject } from "./json-types.js";
