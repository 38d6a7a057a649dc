/**
 * The TypeScript module generated from the agent protocol schema: JSON types, the frame types, the protocol
 * version and enum constants, and the decoders (emit-ts-decoders.ts). It imports nothing, so the same text
 * serves the TS SDK (shipped on its own) and the coordinator.
 */
import { emitTsDecoders } from "./emit-ts-decoders.js";
import { BUILTIN_DEFS, SchemaError, type Definition, type Property, type ProtocolSchema, type Shape } from "./protocol-schema.js";

export function upperSnake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

function comment(text: string | undefined, indent = ""): string[] {
  return text ? [`${indent}/** ${text.replaceAll("*/", "*\\/")} */`] : [];
}

export function tsType(shape: Shape): string {
  switch (shape.kind) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "const":
      return JSON.stringify(shape.value);
    case "enum":
      return shape.values.map((v) => JSON.stringify(v)).join(" | ");
    case "json":
      return "Json";
    case "jsonObject":
      return "JsonObject";
    case "map":
      return `Record<string, ${tsType(shape.values)}>`;
    case "array": {
      const item = tsType(shape.items);
      return item.includes(" | ") ? `(${item})[]` : `${item}[]`;
    }
    case "object":
      return `{ ${shape.properties.map((p) => `${p.name}${optional(p) ? "?" : ""}: ${tsType(p.shape)}`).join("; ")} }`;
    case "union":
      return shape.members.map(tsType).join(" | ");
    case "ref":
      return shape.name;
  }
}

/** Optional in the type: neither required nor filled in by a default. */
export function optional(property: Property): boolean {
  return !property.required && property.default === undefined;
}

function definition(def: Definition): string[] {
  const { name, shape } = def;
  const head = comment(def.description);
  switch (shape.kind) {
    case "const":
      return [...head, `export type ${name} = ${tsType(shape)};`, `export const ${upperSnake(name)}: ${name} = ${tsType(shape)};`];
    case "enum":
      return [...head, `export type ${name} = ${tsType(shape)};`, `export const ${upperSnake(name)}S: readonly ${name}[] = [${shape.values.map((v) => JSON.stringify(v)).join(", ")}];`];
    case "union":
      return [...head, `export type ${name} =`, ...shape.members.map((m, i) => `  | ${tsType(m)}${i === shape.members.length - 1 ? ";" : ""}`)];
    case "object":
      return [...head, `export interface ${name} {`, ...shape.properties.flatMap((p) => [...comment(p.description, "  "), `  ${p.name}${optional(p) ? "?" : ""}: ${tsType(p.shape)};`]), "}"];
    default:
      throw new SchemaError(`${name}: a named definition must be an object, a union, an enum or a const`);
  }
}

export function emitTypeScript(schema: ProtocolSchema, header: string[]): string {
  const lines = [
    ...header.map((line) => `// ${line}`),
    "",
    "/** Any JSON value. */",
    "export type Json = null | boolean | number | string | Json[] | JsonObject;",
    "export type JsonObject = { [key: string]: Json };",
  ];
  for (const def of schema.definitions.values()) {
    if (BUILTIN_DEFS[def.name] || def.inline) continue;
    lines.push("", ...definition(def));
  }
  lines.push(
    "",
    "/** A frame that does not match the schema; the message names the property, e.g. `event.turn must be a non-negative integer`. */",
    "export class FrameError extends Error {",
    '  override readonly name = "FrameError";',
    "}",
    "",
    "function isObject(value: unknown): value is JsonObject {",
    '  return typeof value === "object" && value !== null && !Array.isArray(value);',
    "}",
    ...emitTsDecoders(schema),
  );
  return lines.join("\n") + "\n";
}
