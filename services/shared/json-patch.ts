/**
 * RFC 6902 JSON Patch, applied in place to JSON documents (RFC 6901 pointers).
 * Used by the state store to keep the current state and by tests to check SDK deltas.
 */
import type { Json, JsonObject, JsonPatchOp } from "./json.js";
import { isJsonObject } from "./json.js";

export class JsonPatchError extends Error {
  override readonly name = "JsonPatchError";
}

/** "/a/b~1c" -> ["a", "b/c"]; "" -> []. */
export function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new JsonPatchError(`invalid JSON pointer ${JSON.stringify(pointer)}`);
  return pointer
    .slice(1)
    .split("/")
    .map((token) => (token.includes("~") ? token.replace(/~1/g, "/").replace(/~0/g, "~") : token));
}

export function formatPointer(tokens: readonly (string | number)[]): string {
  return tokens.map((t) => "/" + String(t).replace(/~/g, "~0").replace(/\//g, "~1")).join("");
}

function arrayIndex(array: Json[], token: string, forInsert: boolean): number {
  if (forInsert && token === "-") return array.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new JsonPatchError(`invalid array index ${JSON.stringify(token)}`);
  const index = Number(token);
  if (index > array.length || (!forInsert && index === array.length)) {
    throw new JsonPatchError(`array index ${index} out of bounds (length ${array.length})`);
  }
  return index;
}

function resolveParent(doc: Json, tokens: string[]): Json {
  let node: Json = doc;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(node)) node = node[arrayIndex(node, token, false)] as Json;
    else if (isJsonObject(node) && Object.hasOwn(node, token)) node = node[token] as Json;
    else throw new JsonPatchError(`path /${tokens.join("/")} does not exist`);
  }
  return node;
}

function getAt(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return doc;
  const parent = resolveParent(doc, tokens);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) return parent[arrayIndex(parent, last, false)] as Json;
  if (isJsonObject(parent) && Object.hasOwn(parent, last)) return parent[last] as Json;
  throw new JsonPatchError(`path ${pointer} does not exist`);
}

/** RFC 6902 §4.6 equality: object members compare regardless of order. */
export function jsonEqual(a: Json, b: Json): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i] as Json, b[i] as Json)) return false;
    return true;
  }
  if (!isJsonObject(a) || !isJsonObject(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(b, key) || !jsonEqual(a[key] as Json, b[key] as Json)) return false;
  }
  return true;
}

/** Sets an own property; plain assignment to "__proto__" would change the prototype instead. */
function setMember(target: JsonObject, key: string, value: Json): void {
  if (key === "__proto__") Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  else target[key] = value;
}

function clone(value: Json): Json {
  return value === null || typeof value !== "object" ? value : (JSON.parse(JSON.stringify(value)) as Json);
}

/** Returns the new document (the root may be replaced); mutates `doc` otherwise. */
function applyOne(doc: Json, op: JsonPatchOp): Json {
  switch (op.op) {
    case "test": {
      if (!jsonEqual(getAt(doc, op.path), op.value)) throw new JsonPatchError(`test failed at ${op.path}`);
      return doc;
    }
    case "move":
    case "copy": {
      if (op.op === "move" && op.path.startsWith(op.from + "/")) {
        throw new JsonPatchError(`cannot move ${op.from} into its own child ${op.path}`);
      }
      const value = getAt(doc, op.from);
      const moved = op.op === "copy" ? clone(value) : value;
      const without = op.op === "move" ? applyOne(doc, { op: "remove", path: op.from }) : doc;
      return applyOne(without, { op: "add", path: op.path, value: moved });
    }
    case "add":
    case "remove":
    case "replace":
      break;
    default:
      throw new JsonPatchError(`unknown op ${JSON.stringify((op as { op: unknown }).op)}`);
  }
  const tokens = parsePointer(op.path);
  if (tokens.length === 0) {
    if (op.op === "remove") throw new JsonPatchError("cannot remove the document root");
    return op.value;
  }
  const parent = resolveParent(doc, tokens);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) {
    if (op.op === "add") parent.splice(arrayIndex(parent, last, true), 0, op.value);
    else if (op.op === "replace") parent[arrayIndex(parent, last, false)] = op.value;
    else parent.splice(arrayIndex(parent, last, false), 1);
    return doc;
  }
  if (!isJsonObject(parent)) throw new JsonPatchError(`parent of ${op.path} is not a container`);
  const exists = Object.hasOwn(parent, last);
  if (op.op === "add") setMember(parent, last, op.value);
  else if (!exists) throw new JsonPatchError(`path ${op.path} does not exist`);
  else if (op.op === "replace") setMember(parent, last, op.value);
  else delete parent[last];
  return doc;
}

/**
 * Applies `ops` in order. The document is mutated in place where possible; use the return value,
 * since an op on the root ("") replaces it. Throws JsonPatchError and leaves `doc` partially patched
 * on failure, so callers that need atomicity apply to a clone.
 */
export function applyPatch(doc: Json, ops: readonly JsonPatchOp[]): Json {
  let result = doc;
  for (const op of ops) result = applyOne(result, op);
  return result;
}

export function applyPatchToObject(doc: JsonObject, ops: readonly JsonPatchOp[]): JsonObject {
  const result = applyPatch(doc, ops);
  if (!isJsonObject(result)) throw new JsonPatchError("state must stay a JSON object");
  return result;
}
