/**
 * An ACP prompt (content blocks) -> the `process_message` content Podium agents read:
 * `{"text": …, "acp": {"session_id", "cwd", "mcp_servers", "prompt"?}}`.
 * Text blocks are concatenated; a resource link becomes `[name](uri)`; an embedded text resource is
 * inlined as `<resource uri="…">…</resource>`. Images and audio are not advertised and are refused.
 */
import * as acp from "@agentclientprotocol/sdk";
import type { Json, JsonObject } from "../shared/json.js";

export interface SessionMeta {
  sessionId: string;
  cwd: string;
  mcpServers: acp.McpServer[];
}

function blockText(block: acp.ContentBlock): string {
  switch (block.type) {
    case "text":
      return block.text;
    case "resource_link":
      return `[${block.title ?? block.name}](${block.uri})`;
    case "resource": {
      const resource = block.resource;
      if ("text" in resource && typeof resource.text === "string") return `\n<resource uri="${resource.uri}">\n${resource.text}\n</resource>\n`;
      return `[binary resource ${resource.uri}]`;
    }
    default:
      throw acp.RequestError.invalidParams({ type: block.type }, `content blocks of type "${block.type}" are not supported (see promptCapabilities)`);
  }
}

/** JSON copy of an SDK value (its types allow `undefined` fields, which JSON drops). */
function json<T>(value: T): Json {
  return JSON.parse(JSON.stringify(value)) as Json;
}

/** The metadata every process_message of an ACP session carries. */
export function sessionMetadata(meta: SessionMeta): JsonObject {
  return { session_id: meta.sessionId, cwd: meta.cwd, mcp_servers: json(meta.mcpServers) };
}

export function promptContent(blocks: acp.ContentBlock[], meta: SessionMeta): JsonObject {
  const text = blocks.map(blockText).join("");
  const acpMeta = sessionMetadata(meta);
  if (blocks.some((b) => b.type !== "text")) acpMeta.prompt = json(blocks);
  return { text, acp: acpMeta };
}
