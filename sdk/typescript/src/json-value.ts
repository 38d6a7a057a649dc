/**
 * JSON values for agent state: the types, a validating deep copy, and JSON Pointer escaping.
 * The SDK is shipped to agents on its own, so it does not import from services/.
 */

export type Json = null | boolean | number | string | Json[] | JsonObject;
export type JsonObject = { [key: string]: Json };

/** Thrown when a value that is not JSON is put into ctx.state. `path` says where inside the value. */
export class StateValueError extends TypeError {
  override readonly name = "StateValueError";
  constructor(
    readonly reason: string,
    readonly tokens: (string | number)[] = [],
  ) {
    super(reason);
  }

  /** A copy whose message names the full location as a JSON Pointer, e.g. `state/items/2/when: ...`. */
  at(pointer: string): StateValueError {
    let where = pointer;
    for (const token of this.tokens) where += "/" + escapeToken(String(token));
    const error = new StateValueError(this.reason, this.tokens);
    error.message = `invalid state value at ${where || "/"}: ${this.reason}`;
    return error;
  }
}

export function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (value === undefined) return "undefined is not JSON (use `delete` to remove a key)";
  if (typeof value === "number") return `${String(value)} is not a finite number`;
  if (typeof value === "function") return "functions cannot be stored in state";
  if (typeof value === "bigint") return "bigint is not JSON (store it as a string)";
  if (typeof value === "symbol") return "symbols cannot be stored in state";
  if (value instanceof Date) return "Date is not JSON (store date.toISOString())";
  if (value instanceof Map || value instanceof Set) return "Map/Set are not JSON (use a plain object or an array)";
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return `${typeof name === "string" && name ? name : "class"} instances are not JSON (use plain objects)`;
}

function defineKey(target: JsonObject, key: string, value: Json): void {
  if (key === "__proto__") Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  else target[key] = value;
}

/**
 * Validates `value` as JSON and returns a deep copy that shares nothing with it.
 * `unwrap` maps state proxies back to their raw objects. Throws StateValueError (a TypeError)
 * naming the offending location for undefined, functions, NaN/Infinity, class instances, cycles.
 */
export function copyJson(value: unknown, unwrap: (v: object) => object = (v) => v): Json {
  const ancestors = new Set<object>();
  const copy = (input: unknown): Json => {
    switch (typeof input) {
      case "string":
      case "boolean":
        return input;
      case "number":
        if (!Number.isFinite(input)) throw new StateValueError(describe(input));
        return input === 0 ? 0 : input;
      case "object": {
        if (input === null) return null;
        const raw = unwrap(input);
        if (ancestors.has(raw)) throw new StateValueError("circular reference");
        const isArray = Array.isArray(raw);
        if (!isArray && !isPlainObject(raw)) throw new StateValueError(describe(raw));
        ancestors.add(raw);
        let key: string | number = "";
        try {
          if (isArray) {
            const source = raw as unknown[];
            const out: Json[] = new Array<Json>(source.length);
            for (let i = 0; i < source.length; i++) {
              key = i;
              out[i] = i in source ? copy(source[i]) : null;
            }
            return out;
          }
          const out: JsonObject = {};
          for (const k of Object.keys(raw)) {
            key = k;
            defineKey(out, k, copy((raw as Record<string, unknown>)[k]));
          }
          return out;
        } catch (error) {
          if (error instanceof StateValueError) error.tokens.unshift(key);
          throw error;
        } finally {
          ancestors.delete(raw);
        }
      }
      default:
        throw new StateValueError(describe(input));
    }
  };
  return copy(value);
}

export function setKey(target: JsonObject, key: string, value: Json): void {
  defineKey(target, key, value);
}

/** RFC 6901 escaping of one reference token. */
export function escapeToken(token: string): string {
  if (token.indexOf("~") === -1 && token.indexOf("/") === -1) return token;
  return token.replace(/~/g, "~0").replace(/\//g, "~1");
}
