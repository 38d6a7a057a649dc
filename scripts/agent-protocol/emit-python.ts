/**
 * The Python module generated from the agent protocol schema (sdk/python/podium_agent/protocol.py): the
 * protocol version and enum constants, and a TypedDict per frame. The runner starts with `python3 -I -S`
 * and imports nothing it can avoid (`typing` alone costs ~5 ms of start-up), so the TypedDicts are defined
 * for type checkers only; at run time their names are the plain types frames are (dict, str, int, object).
 */
import { discriminatorValues, SchemaError, type Definition, type Property, type ProtocolSchema, type Shape } from "./protocol-schema.js";
import { optional, upperSnake } from "./emit-typescript.js";

const I = "    ";

function pascal(value: string | number | boolean): string {
  return String(value)
    .split(/[^A-Za-z0-9]+/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join("");
}

function pyLiteral(value: string | number | boolean): string {
  if (typeof value === "boolean") return value ? "True" : "False";
  return JSON.stringify(value);
}

class PythonWriter {
  readonly typed: string[] = [];
  readonly plain: string[] = [];
  private readonly emitted = new Set<string>();

  constructor(private readonly schema: ProtocolSchema) {}

  /** Emits `name` after everything it refers to (type checkers read the block top to bottom). */
  emit(name: string): void {
    if (this.emitted.has(name)) return;
    this.emitted.add(name);
    const def = this.schema.definitions.get(name);
    if (!def) throw new SchemaError(`no definition ${name}`);
    for (const ref of refs(def.shape)) this.emit(ref);
    this.definition(def);
  }

  private definition(def: Definition): void {
    const { name, shape } = def;
    const head = def.description ? [`${I}# ${def.description}`] : [];
    switch (shape.kind) {
      case "json":
        this.typed.push(`${I}Json = Union[None, bool, int, float, str, List["Json"], Dict[str, "Json"]]`);
        this.plain.push(`${I}Json = object`);
        return;
      case "jsonObject":
        this.typed.push(`${I}JsonObject = Dict[str, Json]`);
        this.plain.push(`${I}JsonObject = dict`);
        return;
      case "const":
      case "enum":
        this.typed.push(...head, `${I}${name} = ${this.type(shape, name)}`);
        this.plain.push(`${I}${name} = ${shape.kind === "enum" ? "str" : typeof shape.value === "string" ? "str" : typeof shape.value === "boolean" ? "bool" : "int"}`);
        return;
      case "object":
        this.typedDict(name, shape.properties, head);
        return;
      case "union":
        this.typed.push(...head, `${I}${name} = ${this.type(shape, name)}`);
        this.plain.push(`${I}${name} = dict`);
        return;
      default:
        throw new SchemaError(`${name}: unsupported definition`);
    }
  }

  private typedDict(name: string, properties: Property[], head: string[]): void {
    const fields = properties.map((p) => {
      const type = this.type(p.shape, `${name}${pascal(p.name)}`);
      const note = p.description ? `  # ${p.description}` : "";
      return `${I}${I}${I}${JSON.stringify(p.name)}: ${optional(p) ? `NotRequired[${type}]` : type},${note}`;
    });
    this.typed.push(...head, `${I}${name} = TypedDict(`, `${I}${I}${JSON.stringify(name)},`, `${I}${I}{`, ...fields, `${I}${I}},`, `${I})`);
    this.plain.push(`${I}${name} = dict`);
  }

  /** The type of `shape`; inline objects become TypedDicts named after where they are (`hint`). */
  private type(shape: Shape, hint: string): string {
    switch (shape.kind) {
      case "string":
        return "str";
      case "integer":
        return "int";
      case "number":
        return "float";
      case "const":
        return `Literal[${pyLiteral(shape.value)}]`;
      case "enum":
        return `Literal[${shape.values.map(pyLiteral).join(", ")}]`;
      case "json":
        return "Json";
      case "jsonObject":
        return "JsonObject";
      case "map":
        return `Dict[str, ${this.type(shape.values, hint)}]`;
      case "array":
        return `List[${this.type(shape.items, hint)}]`;
      case "ref":
        return shape.name;
      case "object":
        this.typedDict(hint, shape.properties, []);
        return hint;
      case "union":
        return `Union[${shape.members
          .map((member) => {
            const [value] = member.kind === "object" ? discriminatorValues(this.schema, member, shape.discriminator) : [];
            return this.type(member, `${hint}${pascal(value ?? "")}`);
          })
          .join(", ")}]`;
    }
  }
}

function refs(shape: Shape): string[] {
  switch (shape.kind) {
    case "ref":
      return [shape.name];
    case "map":
      return refs(shape.values);
    case "array":
      return refs(shape.items);
    case "object":
      return shape.properties.flatMap((p) => refs(p.shape));
    case "union":
      return shape.members.flatMap(refs);
    default:
      return [];
  }
}

export function emitPython(schema: ProtocolSchema, header: string[]): string {
  const writer = new PythonWriter(schema);
  const constants: string[] = [];
  for (const def of schema.definitions.values()) {
    const { shape } = def;
    if (shape.kind === "const") constants.push(`${upperSnake(def.name)} = ${pyLiteral(shape.value)}`);
    if (shape.kind === "enum") constants.push(`${upperSnake(def.name)}S = (${shape.values.map(pyLiteral).join(", ")})`);
  }
  for (const root of schema.roots) {
    const shape = schema.definitions.get(root)?.shape;
    if (shape?.kind !== "union") throw new SchemaError(`${root} is not a union`);
    const values = discriminatorValues(schema, shape, shape.discriminator);
    constants.push(`${upperSnake(root)}_TYPES = (${values.map(pyLiteral).join(", ")})`);
  }
  writer.emit("Json");
  writer.emit("JsonObject");
  for (const def of schema.definitions.values()) if (!def.inline) writer.emit(def.name);
  return [
    `"""${header[0]}`,
    "",
    ...header.slice(1),
    "Frames are plain dicts at run time. The TypedDicts below exist for type checkers only: importing `typing`",
    "would cost the runner ~5 ms of start-up, so at run time their names are bound to the plain types instead.",
    '"""',
    "",
    ...constants,
    "",
    "TYPE_CHECKING = False",
    "if TYPE_CHECKING:",
    `${I}from typing import Dict, List, Union`,
    "",
    `${I}from typing_extensions import Literal, NotRequired, TypedDict`,
    "",
    ...writer.typed,
    "else:",
    ...writer.plain,
    "",
  ].join("\n");
}
