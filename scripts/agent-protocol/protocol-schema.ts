/**
 * Reads the agent protocol's JSON Schema (proto/podium/agent/v1/agent-protocol.schema.json) into a small model
 * the emitters walk. Only the subset of JSON Schema the protocol uses is accepted; anything else throws
 * SchemaError, so the schema cannot say something the generated code would silently ignore.
 */

export class SchemaError extends Error {
  override readonly name = "SchemaError";
}

export type JsonLiteral = null | boolean | number | string | JsonLiteral[] | { [key: string]: JsonLiteral };

export type Shape =
  | { kind: "string"; minLength?: number; maxLength?: number }
  | { kind: "integer" | "number"; minimum?: number }
  | { kind: "const"; value: string | number | boolean }
  | { kind: "enum"; values: string[] }
  | { kind: "json" }
  | { kind: "jsonObject" }
  | { kind: "map"; values: Shape; lenientValues: boolean }
  | { kind: "array"; items: Shape }
  | { kind: "object"; properties: Property[] }
  | { kind: "union"; discriminator: string; members: Shape[] }
  /** A reference to a named definition (kept for names in types; decoders look through it). */
  | { kind: "ref"; name: string };

export interface Property {
  name: string;
  shape: Shape;
  required: boolean;
  /** `default` (absent: none). A property with one is always present once decoded. */
  default?: { value: JsonLiteral };
  lenient: boolean;
  description?: string;
}

export interface Definition {
  name: string;
  shape: Shape;
  /** A plain string or number: written inline where it is used, no named type. */
  inline: boolean;
  description?: string;
}

export interface ProtocolSchema {
  /** Named definitions, in the schema's order. */
  definitions: Map<string, Definition>;
  /** The unions of the top-level `oneOf`: the frames of each direction. */
  roots: string[];
}

type Node = { [key: string]: JsonLiteral };

/** The definitions whose names the generated types keep; plain strings and numbers are written inline. */
export const BUILTIN_DEFS: Record<string, Shape> = { Json: { kind: "json" }, JsonObject: { kind: "jsonObject" } };

const KNOWN_KEYWORDS = new Set([
  "$schema",
  "title",
  "description",
  "$comment",
  "$defs",
  "$ref",
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "oneOf",
  "const",
  "enum",
  "minimum",
  "minLength",
  "maxLength",
  "default",
  "x-lenient",
  "x-discriminator",
]);

function isNode(value: JsonLiteral | undefined): value is Node {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalNumber(node: Node, key: string): number | undefined {
  const value = node[key];
  if (value === undefined) return undefined;
  if (typeof value !== "number") throw new SchemaError(`${key} must be a number`);
  return value;
}

export function refName(node: Node): string | undefined {
  const ref = node.$ref;
  if (ref === undefined) return undefined;
  if (typeof ref !== "string" || !ref.startsWith("#/$defs/")) throw new SchemaError(`unsupported $ref ${JSON.stringify(ref)}`);
  return ref.slice("#/$defs/".length);
}

export function loadProtocolSchema(text: string): ProtocolSchema {
  const root = JSON.parse(text) as JsonLiteral;
  if (!isNode(root) || !isNode(root.$defs)) throw new SchemaError("the schema has no $defs");
  const defs = root.$defs;
  const definitions = new Map<string, Definition>();
  const shapeOf = (node: JsonLiteral | undefined, where: string): Shape => {
    if (!isNode(node)) throw new SchemaError(`${where}: a schema must be an object`);
    for (const key of Object.keys(node)) if (!KNOWN_KEYWORDS.has(key)) throw new SchemaError(`${where}: unsupported keyword ${key}`);
    const ref = refName(node);
    if (ref !== undefined) {
      const target = defs[ref];
      if (!isNode(target)) throw new SchemaError(`${where}: $ref to a missing definition ${ref}`);
      if (BUILTIN_DEFS[ref] || isNamed(target)) return { kind: "ref", name: ref };
      return shapeOf(target, ref); // a plain string or number: written inline
    }
    if (node.const !== undefined) {
      const value = node.const;
      if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") throw new SchemaError(`${where}: const must be a scalar`);
      return { kind: "const", value };
    }
    if (node.enum !== undefined) {
      if (!Array.isArray(node.enum) || !node.enum.every((v): v is string => typeof v === "string")) throw new SchemaError(`${where}: enum must list strings`);
      return { kind: "enum", values: node.enum };
    }
    if (node.oneOf !== undefined) {
      const discriminator = node["x-discriminator"];
      if (typeof discriminator !== "string" || !Array.isArray(node.oneOf)) throw new SchemaError(`${where}: oneOf needs x-discriminator`);
      return { kind: "union", discriminator, members: node.oneOf.map((m, i) => shapeOf(m, `${where}.oneOf[${i}]`)) };
    }
    switch (node.type) {
      case "string":
        return { kind: "string", ...numbers(node, ["minLength", "maxLength"]) };
      case "integer":
      case "number":
        return { kind: node.type, ...numbers(node, ["minimum"]) };
      case "array":
        return { kind: "array", items: shapeOf(node.items, `${where}.items`) };
      case "object":
        return objectShape(node, where);
      case undefined:
        if (Object.keys(node).every((k) => k === "description")) return { kind: "json" };
        break;
    }
    throw new SchemaError(`${where}: unsupported schema ${JSON.stringify(node).slice(0, 80)}`);
  };
  const objectShape = (node: Node, where: string): Shape => {
    const { properties, additionalProperties } = node;
    if (isNode(additionalProperties)) {
      return { kind: "map", values: shapeOf(additionalProperties, `${where}.additionalProperties`), lenientValues: additionalProperties["x-lenient"] === true };
    }
    if (properties === undefined) return { kind: "jsonObject" };
    if (!isNode(properties)) throw new SchemaError(`${where}.properties must be an object`);
    const required = Array.isArray(node.required) ? node.required : [];
    for (const name of required) if (typeof name !== "string" || !(name in properties)) throw new SchemaError(`${where}: required names no property ${String(name)}`);
    return {
      kind: "object",
      properties: Object.entries(properties).map(([name, schema]): Property => {
        if (!isNode(schema)) throw new SchemaError(`${where}.${name} must be a schema`);
        const property: Property = { name, shape: shapeOf(schema, `${where}.${name}`), required: required.includes(name), lenient: schema["x-lenient"] === true };
        if (schema.default !== undefined) property.default = { value: schema.default };
        if (typeof schema.description === "string") property.description = schema.description;
        return property;
      }),
    };
  };
  for (const [name, node] of Object.entries(defs)) {
    if (!isNode(node)) throw new SchemaError(`$defs.${name} must be a schema`);
    const definition: Definition = { name, shape: BUILTIN_DEFS[name] ?? shapeOf(node, name), inline: !BUILTIN_DEFS[name] && !isNamed(node) };
    if (typeof node.description === "string") definition.description = node.description;
    definitions.set(name, definition);
  }
  if (!Array.isArray(root.oneOf)) throw new SchemaError("the schema's top-level oneOf must list the frame unions");
  const roots = root.oneOf.map((node) => {
    const name = isNode(node) ? refName(node) : undefined;
    if (name === undefined || definitions.get(name)?.shape.kind !== "union") throw new SchemaError("the top-level oneOf must reference unions");
    return name;
  });
  return { definitions, roots };
}

/** Definitions that become named types: objects, unions, enums and constants. */
function isNamed(node: Node): boolean {
  return node.type === "object" || node.oneOf !== undefined || node.enum !== undefined || node.const !== undefined;
}

function numbers(node: Node, keys: string[]): { [key: string]: number } {
  const out: { [key: string]: number } = {};
  for (const key of keys) {
    const value = optionalNumber(node, key);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** Follows references to the shape behind them. */
export function resolve(schema: ProtocolSchema, shape: Shape): Shape {
  while (shape.kind === "ref") {
    const target = schema.definitions.get(shape.name);
    if (!target) throw new SchemaError(`no definition ${shape.name}`);
    shape = target.shape;
  }
  return shape;
}

/** The value of `key` every member of a (possibly nested) union has as a const: what a switch dispatches on. */
export function discriminatorValues(schema: ProtocolSchema, shape: Shape, key: string): (string | number | boolean)[] {
  const resolved = resolve(schema, shape);
  if (resolved.kind === "union") {
    const values = new Set(resolved.members.flatMap((m) => discriminatorValues(schema, m, key)));
    return [...values];
  }
  if (resolved.kind !== "object") throw new SchemaError(`a union member must be an object (${key})`);
  const property = resolved.properties.find((p) => p.name === key);
  if (property?.shape.kind !== "const" || !property.required) throw new SchemaError(`a union member has no required const ${key}`);
  return [property.shape.value];
}
