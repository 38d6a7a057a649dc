/**
 * Podium TypeScript agent SDK: types for agent authors plus `defineAgent`, an identity helper that
 * gives `ctx` and `message` their types:
 *
 *   export default defineAgent({ async onMessage(ctx, message) { ctx.send("complete", { text: "hi" }); } });
 */
import type { Agent } from "./agent-types.js";
import type { JsonObject } from "./json-value.js";

export type { Agent, AgentContext, AgentInfo, AgentLog, AskOptions, ScheduleInfo } from "./agent-types.js";
export type { Json, JsonObject } from "./json-value.js";
export { StateValueError } from "./json-value.js";

export function defineAgent<S extends object = JsonObject, M extends object = JsonObject>(agent: Agent<S, M>): Agent<S, M> {
  return agent;
}
