/**
 * Podium TypeScript agent SDK (`@podium-agents/sdk`): types for agent authors plus `defineAgent`, an
 * identity function that types `ctx` and `message`:
 *
 *   import { defineAgent } from "@podium-agents/sdk";
 *   export default defineAgent({
 *     initialState: { turns: 0 },                         // State is inferred from it
 *     async onMessage(ctx, message) {
 *       ctx.state.turns += 1;                             // ctx.state: { turns: number }
 *       ctx.send("stream_update", { text: "hi" });        // checked against the event vocabulary
 *     },
 *   });
 *
 * With explicit types: `defineAgent<State, Events, Message>({...})`, where Events adds the agent's
 * own event types to the seed vocabulary (agent-events.ts). Inside a Podium runner the specifier
 * `@podium-agents/sdk` resolves to this module without any node_modules (runner.ts).
 */
import type { EventMap } from "./agent-events.js";
import type { Agent } from "./agent-types.js";
import type { JsonObject } from "./json-value.js";

export type { Agent, AgentContext, AgentInfo, AgentLog, AskOptions, ScheduleInfo } from "./agent-types.js";
export type { AgentEvents, AnyEvents, ContextUsage, EventMap, NoContent, PermissionRequest, PlatformEvents, SeedEvents, SendContent, Usage } from "./agent-events.js";
export type { Json, JsonObject } from "./json-value.js";
export { StateValueError } from "./json-value.js";

/**
 * Declares an agent: returns `agent` as it is, typed. `S` (the state) is inferred from
 * `initialState` when not given; `E` declares the agent's own event types (default: only the seed
 * vocabulary; `AnyEvents` turns checking off); `M` is the message content (default: a JSON object of whatever shape).
 */
// biome-ignore lint/complexity/noBannedTypes: `{}` is the empty event map (no events of the agent's own); `Record<never, never>` reads worse in users' hovers
export function defineAgent<S extends object = JsonObject, E extends EventMap<E> = {}, M extends object = JsonObject>(agent: Agent<S, E, M>): Agent<S, E, M> {
  return agent;
}
