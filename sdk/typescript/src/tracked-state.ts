/**
 * ctx.state: a Proxy over the raw JSON tree that records every mutation as RFC 6902 ops.
 *
 * Rules (see sdk/README.md):
 * - Values are validated and deep-copied on the way in (assigning an object stores a copy; later
 *   changes to the original are not seen). Non-JSON values throw StateValueError (a TypeError).
 * - Each op's value is serialized at mutation time, so replaying the ops in order on the previous
 *   state gives exactly the new state. Nothing re-serializes the whole state on a small change.
 * - The tree never aliases: one raw object sits at exactly one place, so a proxy's path is found by
 *   walking parent links (array indexes are re-checked by identity, since shift/splice/sort move them).
 * - Mutating an object that is no longer in the state (e.g. kept after `delete`) changes only that
 *   object and records nothing.
 */
import { copyJson, escapeToken, setKey, StateValueError, type Json, type JsonObject } from "./json-value.js";
import { arrayMutators, type ArrayHost } from "./tracked-array.js";

export type Container = JsonObject | Json[];
type OpKind = "add" | "remove" | "replace";
interface PendingOp {
  op: OpKind;
  path: string;
  json: string | undefined;
}
interface Node {
  proxy: Container;
  parent: Container | null;
  key: string | number;
}

const hasOwn = Object.prototype.hasOwnProperty;
const INDEX = /^(?:0|[1-9]\d*)$/;
/** Largest gap of nulls an index assignment or `length =` may create (JS would make a sparse array). */
const MAX_GAP = 100_000;

function isObject(value: unknown): value is object {
  return typeof value === "object" && value !== null;
}

export class StateTracker implements ArrayHost {
  private rootTarget: JsonObject;
  private readonly nodes = new WeakMap<object, Node>();
  private readonly raws = new WeakMap<object, Container>();
  private ops: PendingOp[] = [];
  private readonly objectHandler: ProxyHandler<JsonObject>;
  private readonly arrayHandler: ProxyHandler<Json[]>;
  private readonly mutators: ReadonlyMap<string, (this: unknown, ...args: unknown[]) => unknown>;
  readonly unwrap = (value: object): object => this.raws.get(value) ?? value;

  /** Takes ownership of `initial` (a freshly parsed JSON object); records nothing. */
  constructor(initial: JsonObject) {
    this.rootTarget = initial;
    this.objectHandler = this.makeObjectHandler();
    this.arrayHandler = this.makeArrayHandler();
    this.mutators = arrayMutators(this);
    this.adopt(initial, null, "");
  }

  /** The live, tracked state object. */
  get state(): JsonObject {
    return this.proxyOf(this.rootTarget, null, "") as JsonObject;
  }

  /** The raw current state (no proxy). Do not mutate it. */
  get raw(): JsonObject {
    return this.rootTarget;
  }

  /**
   * Replaces the whole state with a copy of `value`; records `replace ""` and drops older pending ops.
   * `owned` (an object freshly parsed from JSON that nobody else holds) skips the copy.
   */
  replace(value: unknown, owned = false): void {
    if (!isObject(value) || Array.isArray(this.unwrap(value))) throw new TypeError("state must be a plain JSON object");
    const copy = owned ? (value as JsonObject) : (this.copyIn(value, "") as JsonObject);
    this.rootTarget = copy;
    this.adopt(copy, null, "");
    this.ops = [{ op: "replace", path: "", json: JSON.stringify(copy) }];
  }

  get pendingOps(): number {
    return this.ops.length;
  }

  /** The pending ops as JSON array text (cleared), or undefined when there are none. */
  takeOps(): string | undefined {
    if (this.ops.length === 0) return undefined;
    const parts: string[] = [];
    for (const { op, path, json } of this.ops) {
      const head = `{"op":"${op}","path":${JSON.stringify(path)}`;
      parts.push(json === undefined ? head + "}" : `${head},"value":${json}}`);
    }
    this.ops = [];
    return `[${parts.join(",")}]`;
  }

  // ---- ArrayHost (used by tracked-array.ts) ----

  rawArray(value: unknown): Json[] | undefined {
    if (!isObject(value)) return undefined;
    const raw = this.raws.get(value);
    return Array.isArray(raw) ? raw : undefined;
  }

  copyIn(value: unknown, pointer: string): Json {
    switch (typeof value) {
      case "string":
      case "boolean":
        return value;
      case "number":
        if (Number.isFinite(value)) return value === 0 ? 0 : value;
        break;
      case "object":
        if (value === null) return null;
        break;
      default:
        break;
    }
    try {
      return copyJson(value, this.unwrap);
    } catch (error) {
      throw error instanceof StateValueError ? error.at(pointer) : error;
    }
  }

  /** JSON Pointer of a container, or undefined when it is no longer part of the state. */
  pathOf(raw: Container): string | undefined {
    if (raw === this.rootTarget) return "";
    const node = this.nodes.get(raw);
    const parent = node?.parent;
    if (!node || !parent) return undefined;
    let key = node.key;
    if (Array.isArray(parent)) {
      if (parent[key as number] !== raw) {
        const index = parent.indexOf(raw);
        if (index < 0) return undefined;
        node.key = key = index;
      }
    } else if (parent[key] !== raw) {
      return undefined;
    }
    const base = this.pathOf(parent);
    return base === undefined ? undefined : `${base}/${typeof key === "number" ? key : escapeToken(key)}`;
  }

  record(op: OpKind, path: string, value?: Json): void {
    const last = this.ops[this.ops.length - 1];
    const json = op === "remove" ? undefined : typeof value === "number" || typeof value === "boolean" || value === null ? String(value) : JSON.stringify(value);
    if (op === "replace" && last && last.path === path && last.op !== "remove") {
      last.json = json; // add+replace -> add, replace+replace -> replace
      return;
    }
    this.ops.push({ op, path, json });
  }

  /** Records a replace of the whole array (used when precise ops would be more than the array). */
  recordWhole(raw: Json[], base: string): void {
    this.record("replace", base, raw);
  }

  // ---- proxies ----

  private adopt(raw: Container, parent: Container | null, key: string | number): Node {
    const proxy = (Array.isArray(raw) ? new Proxy(raw, this.arrayHandler) : new Proxy(raw, this.objectHandler)) as Container;
    const node: Node = { proxy, parent, key };
    this.nodes.set(raw, node);
    this.raws.set(proxy, raw);
    return node;
  }

  private proxyOf(raw: Container, parent: Container | null, key: string | number): Container {
    const node = this.nodes.get(raw);
    if (!node) return this.adopt(raw, parent, key).proxy;
    if (parent) {
      node.parent = parent;
      node.key = key;
    }
    return node.proxy;
  }

  private wrapChild(target: Container, key: string, value: unknown): unknown {
    if (isObject(value) && hasOwn.call(target, key)) return this.proxyOf(value as Container, target, key);
    return value;
  }

  private unchanged(current: unknown, value: unknown): boolean {
    if (current === value) return !isObject(value);
    return isObject(value) && isObject(current) && this.raws.get(value) === current;
  }

  private setObjectKey(target: JsonObject, key: string, value: unknown): boolean {
    const exists = hasOwn.call(target, key);
    if (exists && this.unchanged(target[key], value)) return true;
    const base = this.pathOf(target);
    const path = `${base ?? ""}/${escapeToken(key)}`;
    const copy = this.copyIn(value, path);
    setKey(target, key, copy);
    if (base !== undefined) this.record(exists ? "replace" : "add", path, copy);
    return true;
  }

  private setArrayIndex(target: Json[], index: number, value: unknown): boolean {
    const len = target.length;
    if (index < len && this.unchanged(target[index], value)) return true;
    const base = this.pathOf(target);
    const copy = this.copyIn(value, `${base ?? ""}/${index}`);
    if (index < len) {
      target[index] = copy;
      if (base !== undefined) this.record("replace", `${base}/${index}`, copy);
      return true;
    }
    this.grow(target, base, index);
    target.push(copy);
    if (base !== undefined) this.record("add", `${base}/${index}`, copy);
    return true;
  }

  /** Pads `target` with nulls up to `length` (JSON has no holes). */
  private grow(target: Json[], base: string | undefined, length: number): void {
    if (length - target.length > MAX_GAP) throw new RangeError(`state arrays cannot have holes: index ${length} is far past the end`);
    while (target.length < length) {
      const index = target.length;
      target.push(null);
      if (base !== undefined) this.record("add", `${base}/${index}`, null);
    }
  }

  private setLength(target: Json[], value: unknown): boolean {
    const length = Number(value);
    if (!Number.isInteger(length) || length < 0 || length > 2 ** 32 - 1) throw new RangeError("Invalid array length");
    const base = this.pathOf(target);
    if (length >= target.length) {
      this.grow(target, base, length);
      return true;
    }
    const removed = target.length - length;
    if (base !== undefined && removed > Math.max(16, length)) {
      target.length = length;
      this.recordWhole(target, base);
      return true;
    }
    while (target.length > length) {
      const index = target.length - 1;
      target.pop();
      if (base !== undefined) this.record("remove", `${base}/${index}`);
    }
    return true;
  }

  private definer(set: (target: never, key: string, value: unknown) => boolean) {
    return (target: never, key: string | symbol, desc: PropertyDescriptor): boolean => {
      if (typeof key === "symbol") throw new TypeError("state keys must be strings");
      if (desc.get || desc.set) throw new TypeError("state cannot hold getters or setters");
      if (!("value" in desc)) throw new TypeError("state properties cannot be frozen or redefined");
      return set(target, key, desc.value);
    };
  }

  private makeObjectHandler(): ProxyHandler<JsonObject> {
    const set = (target: JsonObject, key: string, value: unknown) => this.setObjectKey(target, key, value);
    return {
      get: (target, key) => {
        const value: unknown = Reflect.get(target, key);
        return typeof key === "string" ? this.wrapChild(target, key, value) : value;
      },
      set: (target, key, value) => {
        if (typeof key === "symbol") throw new TypeError("state keys must be strings");
        return set(target, key, value);
      },
      deleteProperty: (target, key) => {
        if (typeof key === "symbol" || !hasOwn.call(target, key)) return true;
        const base = this.pathOf(target);
        delete target[key];
        if (base !== undefined) this.record("remove", `${base}/${escapeToken(key)}`);
        return true;
      },
      getOwnPropertyDescriptor: (target, key) => {
        const desc = Reflect.getOwnPropertyDescriptor(target, key);
        if (desc && typeof key === "string") desc.value = this.wrapChild(target, key, desc.value);
        return desc;
      },
      defineProperty: this.definer(set as (target: never, key: string, value: unknown) => boolean),
      setPrototypeOf: () => {
        throw new TypeError("state objects must stay plain objects");
      },
      preventExtensions: () => {
        throw new TypeError("state cannot be frozen or sealed");
      },
    };
  }

  private makeArrayHandler(): ProxyHandler<Json[]> {
    const set = (target: Json[], key: string, value: unknown): boolean => {
      if (key === "length") return this.setLength(target, value);
      if (!INDEX.test(key)) throw new TypeError(`arrays in state only hold elements (cannot set ${JSON.stringify(key)})`);
      return this.setArrayIndex(target, Number(key), value);
    };
    return {
      get: (target, key) => {
        const value: unknown = Reflect.get(target, key);
        if (typeof key !== "string") return value;
        if (typeof value === "function") return this.mutators.get(key) ?? value;
        return this.wrapChild(target, key, value);
      },
      set: (target, key, value) => {
        if (typeof key === "symbol") throw new TypeError("state keys must be strings");
        return set(target, key, value);
      },
      deleteProperty: (target, key) => {
        if (typeof key === "string" && INDEX.test(key) && Number(key) < target.length) {
          return this.setArrayIndex(target, Number(key), null); // JSON has no holes: delete leaves null
        }
        return key !== "length";
      },
      getOwnPropertyDescriptor: (target, key) => {
        const desc = Reflect.getOwnPropertyDescriptor(target, key);
        if (desc && typeof key === "string" && key !== "length") desc.value = this.wrapChild(target, key, desc.value);
        return desc;
      },
      defineProperty: this.definer(set as (target: never, key: string, value: unknown) => boolean),
      setPrototypeOf: () => {
        throw new TypeError("state arrays must stay plain arrays");
      },
      preventExtensions: () => {
        throw new TypeError("state cannot be frozen or sealed");
      },
    };
  }
}
