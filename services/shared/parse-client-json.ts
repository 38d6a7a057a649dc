/**
 * JSON from clients (REST bodies, WebSocket frames) is parsed here, once, at the edge. JSON.parse
 * itself does not recurse, but what runs after it does (JSON.stringify, protobuf Struct conversion,
 * the agents' own JSON parsers): 100,000 nested objects would overflow the stack. So nesting is
 * bounded to MAX_JSON_DEPTH levels of objects and arrays, the document itself counting as level 1.
 * The bound stays below protobuf's (100 message levels, about 49 levels of a Struct), so whatever
 * passes here also crosses the gateway -> coordinator gRPC hop. See docs/api.md ("Limits").
 */
import { Code, ConnectError } from "@connectrpc/connect";

export const MAX_JSON_DEPTH = 32;

/** Does `value` nest objects/arrays more than `max` levels deep? Iterative: safe on any depth. */
export function jsonDepthExceeds(value: unknown, max: number): boolean {
  const stack: { value: object; depth: number }[] = [];
  if (typeof value === "object" && value !== null) stack.push({ value, depth: 1 });
  for (let top = stack.pop(); top; top = stack.pop()) {
    if (top.depth > max) return true;
    for (const child of Array.isArray(top.value) ? top.value : Object.values(top.value)) {
      if (typeof child === "object" && child !== null) stack.push({ value: child as object, depth: top.depth + 1 });
    }
  }
  return false;
}

/** Parses one JSON document from a client; `what` names it in errors ("request body", "frame"). */
export function parseClientJson(text: string, what: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConnectError(`${what} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
  }
  if (jsonDepthExceeds(value, MAX_JSON_DEPTH)) {
    throw new ConnectError(`${what} nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep`, Code.InvalidArgument);
  }
  return value;
}
