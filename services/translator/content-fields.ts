/**
 * Reading fields out of a Podium event's `content`, liberally: each output field names a list of
 * snake_case aliases, and every alias is also tried in camelCase (`tool_call_id` -> `toolCallId`).
 * The first alias present with a value of the right kind wins. Output is always snake_case and
 * always of the declared kind (strict in what we emit).
 */
import type { Json, JsonObject } from "../shared/json.js";
import { isJsonObject } from "../shared/json.js";

/**
 * - `text`: a string, as is.
 * - `id`: a string, or a finite number written as a decimal string.
 * - `message`: a string, or an object with a string `message` (`{"error":{"message":"boom"}}`).
 * - `count`: a finite number >= 0, or a decimal string of one.
 * - `number`: a finite number, or a decimal string of one.
 * - `exit_code`: an integer, or null (killed by a signal); decimal strings accepted.
 * - `boolean`: true/false, or the strings "true"/"false".
 * - `json`: every JSON value except null.
 * - `args`: like `json`, but a string holding JSON is parsed (tool arguments often arrive serialised).
 */
export type FieldKind = "text" | "id" | "message" | "count" | "number" | "exit_code" | "boolean" | "json" | "args";

export interface FieldSpec {
  /** The snake_case key written to the client event's data. */
  readonly out: string;
  /** snake_case keys read from content, in priority order (camelCase variants are tried too). */
  readonly from: readonly string[];
  readonly kind: FieldKind;
  /** Written when no alias yields a value. Without it the field is left out. */
  readonly default?: Json;
}

export function camelCase(snake: string): string {
  return snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function numeric(value: Json): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  return undefined;
}

/** Coerces one raw value to `kind`; undefined when it does not fit. */
export function coerce(value: Json, kind: FieldKind): Json | undefined {
  switch (kind) {
    case "text":
      return typeof value === "string" ? value : undefined;
    case "id":
      if (typeof value === "string") return value.length > 0 ? value : undefined;
      return typeof value === "number" && Number.isFinite(value) ? String(value) : undefined;
    case "message":
      if (typeof value === "string") return value;
      return isJsonObject(value) && typeof value.message === "string" ? value.message : undefined;
    case "count": {
      const n = numeric(value);
      return n !== undefined && n >= 0 ? n : undefined;
    }
    case "number":
      return numeric(value);
    case "exit_code": {
      if (value === null) return null;
      const n = numeric(value);
      return n !== undefined && Number.isInteger(n) ? n : undefined;
    }
    case "boolean":
      if (typeof value === "boolean") return value;
      return value === "true" ? true : value === "false" ? false : undefined;
    case "json":
      return value === null ? undefined : value;
    case "args":
      if (typeof value === "string") {
        try {
          return JSON.parse(value) as Json;
        } catch {
          return value;
        }
      }
      return value === null ? undefined : value;
  }
}

/** The first alias (snake_case, then camelCase) in `content` that coerces to the field's kind. */
export function readField(content: JsonObject, spec: FieldSpec): Json | undefined {
  for (const alias of spec.from) {
    for (const key of alias.includes("_") ? [alias, camelCase(alias)] : [alias]) {
      if (!Object.hasOwn(content, key)) continue;
      const raw = content[key];
      if (raw === undefined) continue;
      const value = coerce(raw, spec.kind);
      if (value !== undefined) return value;
    }
  }
  return undefined;
}

/** Builds a client event's data from content: only the declared fields, defaults filled. */
export function pickFields(content: JsonObject | undefined, specs: readonly FieldSpec[]): JsonObject {
  const data: JsonObject = {};
  for (const spec of specs) {
    const value = content ? readField(content, spec) : undefined;
    if (value !== undefined) data[spec.out] = typeof value === "object" && value !== null ? structuredClone(value) : value;
    else if (spec.default !== undefined) data[spec.out] = structuredClone(spec.default);
  }
  return data;
}
