/** Imports an agent entry module and checks that it exports an agent. */
import type { Agent } from "./agent-types.js";

function isRecord(value: unknown): value is Record<string, unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null;
}

/**
 * Accepts `export default { onMessage, ... }`, named exports (`export async function onMessage`),
 * or `export default async function (ctx, message) {}` as the onMessage handler.
 */
export async function loadAgent(entry: string): Promise<Agent> {
  // A plain absolute path imports as is (node:url costs ~2 ms of start-up under Bun).
  const specifier = entry.startsWith("/") && !/[#?%\\]/.test(entry) ? entry : (await import("node:url")).pathToFileURL(entry).href;
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
  return candidate as unknown as Agent;
}
