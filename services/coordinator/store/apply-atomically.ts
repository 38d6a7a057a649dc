/**
 * All-or-nothing JSON Patch on a live document without cloning it. Each op is applied in place with
 * applyPatch (shared/json-patch.ts) after recording its inverse; if a later op fails, the inverses
 * run in reverse and the document holds its previous value again. Cost is proportional to the ops,
 * not to the document, so it suits multi-megabyte agent states.
 *
 * After a rollback every value is restored, but an object member that an op removed comes back as
 * the object's last member (JSON objects are unordered; RFC 8259 §4).
 */
import type { Json, JsonObject, JsonPatchOp } from "../../shared/json.js";
import { isJsonObject } from "../../shared/json.js";
import { applyPatch, formatPointer, JsonPatchError, parsePointer } from "../../shared/json-patch.js";

export interface AppliedPatch {
  /** The patched state: the same object as the input unless an op replaced the root. */
  state: JsonObject;
  /**
   * The patch's `copy` ops (by index) with the JSON of what each one copied, as it was when it was copied: a
   * store keeps a copy as the `add` it amounts to, so that its log says how much the state grew (a few bytes
   * of `copy` can copy a whole subtree). Empty when there was no copy.
   */
  copies: { index: number; json: string }[];
  /** Undoes the whole patch (call before any other change to the state); returns the old root. */
  rollback(): JsonObject;
}

type PrimitiveOp = Extract<JsonPatchOp, { op: "add" | "remove" | "replace" }>;

const ARRAY_INDEX = /^(0|[1-9][0-9]*)$/;
function hasOwn(object: JsonObject, key: string): boolean {
  return Object.hasOwn(object, key);
}

/** The value at `tokens`, or undefined when there is none (same index rules as applyPatch). */
function lookup(doc: Json, tokens: readonly string[]): Json | undefined {
  let node: Json | undefined = doc;
  for (const token of tokens) {
    if (Array.isArray(node)) node = ARRAY_INDEX.test(token) ? node[Number(token)] : undefined;
    else if (isJsonObject(node)) node = hasOwn(node, token) ? node[token] : undefined;
    else return undefined;
    if (node === undefined) return undefined;
  }
  return node;
}

function valueAt(doc: Json, pointer: string): Json {
  const value = lookup(doc, parsePointer(pointer));
  if (value === undefined) throw new JsonPatchError(`path ${pointer} does not exist`);
  return value;
}

/** The op that undoes `op` on `doc` (computed before applying it); undefined if `op` cannot apply. */
function inverseOf(doc: Json, op: PrimitiveOp): JsonPatchOp | undefined {
  const tokens = parsePointer(op.path);
  if (tokens.length === 0) return { op: "replace", path: "", value: doc };
  const parentTokens = tokens.slice(0, -1);
  const parent = lookup(doc, parentTokens);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) {
    if (op.op === "add") {
      const index = last === "-" ? parent.length : Number(last);
      return { op: "remove", path: formatPointer([...parentTokens, index]) };
    }
    const old = ARRAY_INDEX.test(last) ? parent[Number(last)] : undefined;
    if (old === undefined) return undefined;
    return op.op === "remove" ? { op: "add", path: op.path, value: old } : { op: "replace", path: op.path, value: old };
  }
  if (!isJsonObject(parent)) return undefined;
  if (!hasOwn(parent, last)) return op.op === "add" ? { op: "remove", path: op.path } : undefined;
  const old = parent[last] as Json;
  return op.op === "remove" ? { op: "add", path: op.path, value: old } : { op: "replace", path: op.path, value: old };
}

/** How deep a state may nest (objects and arrays, the state itself being level 1); JSON.stringify and replays stay far from the stack's end. */
export const MAX_STATE_DEPTH = 128;
/** How deep a patch may address (frames nest at most 32 levels: an add at this depth stays under MAX_STATE_DEPTH). */
const MAX_PATH_DEPTH = 64;

/**
 * About the size of `value` as JSON (strings without their escapes), counted only up to `limit`: the walk
 * stops once it passes it, so a budget check costs no more than the budget, whatever the value's size.
 * Throws when `value` nests deeper than `maxDepth` levels.
 */
export function jsonSizeWithin(value: Json, limit: number, maxDepth = Number.POSITIVE_INFINITY): number {
  let size = 0;
  const stack: [Json, number][] = [[value, 1]];
  while (stack.length > 0 && size <= limit) {
    const [node, depth] = stack.pop() as [Json, number];
    if (node === null || typeof node === "boolean") size += 5;
    else if (typeof node === "number") size += String(node).length;
    else if (typeof node === "string") size += node.length + 2;
    else {
      if (depth > maxDepth) throw new JsonPatchError(`the state would nest deeper than ${MAX_STATE_DEPTH} levels`);
      if (Array.isArray(node)) {
        size += 1 + node.length;
        for (const item of node) stack.push([item, depth + 1]);
      } else {
        for (const key in node) {
          size += key.length + 4;
          stack.push([node[key] as Json, depth + 1]);
        }
        size += 2;
      }
    }
  }
  return size;
}

/** The number of levels `pointer` addresses; throws past MAX_PATH_DEPTH. */
function pathDepth(pointer: string): number {
  const depth = parsePointer(pointer).length;
  if (depth > MAX_PATH_DEPTH) throw new JsonPatchError(`path ${JSON.stringify(pointer.slice(0, 128))}… is deeper than ${MAX_PATH_DEPTH} levels`);
  return depth;
}

/** Ops come from agents: reject what the JsonPatchOp type promises but JSON may not hold. */
function checkShape(op: JsonPatchOp): void {
  const raw: unknown = op;
  if (!isJsonObject(raw) || typeof raw.path !== "string") throw new JsonPatchError("an operation needs a string path");
  if ((raw.op === "add" || raw.op === "replace" || raw.op === "test") && raw.value === undefined) {
    throw new JsonPatchError(`${raw.op} at ${raw.path} has no value`);
  }
  if ((raw.op === "move" || raw.op === "copy") && typeof raw.from !== "string") throw new JsonPatchError(`${raw.op} needs a string from`);
}

/** Applies one add / remove / replace after recording its inverse in `undo`; returns the new root. */
function step(doc: Json, op: PrimitiveOp, undo: JsonPatchOp[]): Json {
  const inverse = inverseOf(doc, op);
  const result = applyPatch(doc, [op]); // throws before changing anything if `op` cannot apply
  if (!inverse) throw new JsonPatchError(`cannot apply ${op.op} at ${op.path}`); // unreachable: lookup mirrors applyPatch
  undo.push(inverse);
  return result;
}

function undoAll(doc: Json, undo: JsonPatchOp[]): Json {
  let current = doc;
  for (let i = undo.length - 1; i >= 0; i--) current = applyPatch(current, [undo[i] as JsonPatchOp]);
  undo.length = 0;
  return current;
}

class Applied implements AppliedPatch {
  constructor(
    readonly state: JsonObject,
    private readonly undo: JsonPatchOp[],
    readonly copies: { index: number; json: string }[],
  ) {}

  rollback(): JsonObject {
    return undoAll(this.state, this.undo) as JsonObject;
  }
}

export interface ApplyLimits {
  /**
   * JSON bytes the patch may carry around together: what its `copy` ops copy, and what its `move` ops take
   * deeper (walked to check the depth); past it the patch fails before the op is made (StateStore passes what
   * is left of the state's size limit). Default unbounded.
   */
  budget?: number;
  /** Path and nesting depth checks (default true); off for replaying patches stored before they existed. */
  depth?: boolean;
}

/**
 * Applies `ops` to `doc` in place. On failure the document is restored and the JsonPatchError is
 * rethrown. The ops' values become part of the state (not copied): pass ops nobody else mutates.
 */
export function applyAtomically(doc: JsonObject, ops: readonly JsonPatchOp[], limits: ApplyLimits = {}): AppliedPatch {
  const budget = limits.budget ?? Number.POSITIVE_INFINITY;
  const depthLimits = limits.depth ?? true;
  const undo: JsonPatchOp[] = [];
  let current: Json = doc;
  let copied = 0;
  const copies: { index: number; json: string }[] = [];
  try {
    for (let index = 0; index < ops.length; index++) {
      const op = ops[index] as JsonPatchOp;
      checkShape(op);
      const depth = depthLimits ? pathDepth(op.path) : 0;
      switch (op.op) {
        case "test":
          applyPatch(current, [op]);
          break;
        case "add":
        case "remove":
        case "replace":
          current = step(current, op, undo);
          break;
        case "move": {
          if (op.path.startsWith(op.from + "/")) throw new JsonPatchError(`cannot move ${op.from} into its own child ${op.path}`);
          const value = valueAt(current, op.from);
          // Deeper than it was: what it holds must still fit under MAX_STATE_DEPTH there (a walk, out of the budget).
          if (depthLimits && depth > pathDepth(op.from)) {
            copied += jsonSizeWithin(value, budget - copied, MAX_STATE_DEPTH - depth);
            if (copied > budget) throw new JsonPatchError(`move from ${JSON.stringify(op.from.slice(0, 128))} deeper: the patch carries more than it may`);
          }
          current = step(current, { op: "remove", path: op.from }, undo);
          current = step(current, { op: "add", path: op.path, value }, undo);
          break;
        }
        case "copy": {
          const source = valueAt(current, op.from);
          copied += jsonSizeWithin(source, budget - copied, depthLimits ? MAX_STATE_DEPTH - depth : Number.POSITIVE_INFINITY);
          if (copied > budget) throw new JsonPatchError(`copy from ${JSON.stringify(op.from.slice(0, 128))} would take the state past its size limit`);
          // Its JSON as it is now (a later op of the patch may change the copy): what the store keeps.
          const json = JSON.stringify(source);
          copies.push({ index, json });
          current = step(current, { op: "add", path: op.path, value: JSON.parse(json) as Json }, undo);
          break;
        }
        default:
          throw new JsonPatchError(`unknown op ${JSON.stringify((op as { op: unknown }).op)}`);
      }
    }
    if (!isJsonObject(current)) throw new JsonPatchError("state must stay a JSON object");
  } catch (err) {
    undoAll(current, undo);
    throw err;
  }
  return new Applied(current, undo, copies);
}
