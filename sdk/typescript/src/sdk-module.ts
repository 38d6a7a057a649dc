/**
 * `import { defineAgent } from "@podium-agents/sdk"` inside an agent bundle. A bundle runs in a
 * sandbox without node_modules (and Bun runs with --no-install), so the runner registers the SDK's
 * package name as a Bun virtual module whose exports are this SDK's own (index.ts): the agent gets
 * the very SDK that runs it, whatever version its author installed for type-checking. Only that
 * exact name is served; nothing is read beyond the SDK directory the sandbox already mounts
 * read-only (docs/security.md). The index module is imported when an agent first imports the name,
 * so agents that do not pay nothing but the registration (~0.2 ms).
 */

/** The npm name of the TypeScript agent SDK (sdk/typescript). */
export const SDK_PACKAGE = "@podium-agents/sdk";

/** The part of Bun's runtime plugin API used here (the SDK does not depend on bun-types). */
interface BunPluginBuilder {
  module(specifier: string, load: () => Promise<{ exports: Record<string, unknown>; loader: "object" }>): unknown;
}
interface BunRuntime {
  plugin(plugin: { name: string; setup(build: BunPluginBuilder): void }): unknown;
}

let registered = false;

/** Serves SDK_PACKAGE to modules imported after this call; true when it does (under Node, without `Bun`, it does nothing). */
export function registerSdkModule(): boolean {
  const bun = (globalThis as { Bun?: BunRuntime }).Bun;
  if (bun === undefined) return false;
  if (registered) return true;
  registered = true;
  bun.plugin({
    name: "podium-agent-sdk",
    setup(build) {
      build.module(SDK_PACKAGE, async () => ({ exports: { ...(await import("./index.js")) }, loader: "object" }));
    },
  });
  return true;
}
