/** Imports an agent entry module and checks that it exports an agent. */
import type { AnyEvents } from "./agent-events.js";
import type { Agent } from "./agent-types.js";
import type { JsonObject } from "./json-value.js";
import { registerSdkModule } from "./sdk-module.js";

/** An agent as the runtime sees it: whatever its author declared, checked at run time. */
export type LoadedAgent = Agent<JsonObject, AnyEvents>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null;
}

/**
 * Accepts `export default { onMessage, ... }`, named exports (`export async function onMessage`),
 * or `export default async function (ctx, message) {}` as the onMessage handler.
 */
export async function loadAgent(entry: string): Promise<LoadedAgent> {
  // A plain absolute path imports as is (node:url costs ~2 ms of start-up under Bun).
  const specifier = entry.startsWith("/") && !/[#?%\\]/.test(entry) ? entry : (await import("node:url")).pathToFileURL(entry).href;
  registerSdkModule(); // the entry may import "@podium-agents/sdk"
  const mod: unknown = await import(specifier);
  if (!isRecord(mod)) throw new TypeError(`${entry} did not load as a module`);
  const exported = mod.default;
  const candidate: unknown = typeof exported === "function" ? { onMessage: exported } : isRecord(exported) ? exported : mod;
  if (!isRecord(candidate) || typeof candidate.onMessage !== "function") {
    throw new TypeError(`${entry} must export default { async onMessage(ctx, message) { ... } }`);
  }
  for (const hook of ["onStart", "onStop", "onHibernate"] as const) {
    if (candidate[hook] !== undefined && typeof candidate[hook] !== "function") throw new TypeError(`${entry}: ${hook} must be a function`);
  }
  return candidate as unknown as LoadedAgent;
}
