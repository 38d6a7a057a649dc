/**
 * Generated decoders: one function per frame, written out as straight-line checks (no schema walked at run
 * time), so the coordinator's validation of every agent frame costs what a hand-written one does.
 *
 * - `decode<Root>(v)` for each top-level union switches on its discriminator (`type`) to a frame decoder.
 * - A frame decoder checks each property and returns a new object with only the schema's properties, in
 *   schema order: required ones in one literal, optional ones added after. Defaults, `x-lenient` and
 *   "null counts as missing" follow the rules in the schema's description.
 * - Arrays are checked item by item (`check<Def>`, which returns the problem instead of throwing) and kept as
 *   they are: a state patch can hold thousands of ops.
 */
import { tsType } from "./emit-typescript.js";
import { discriminatorValues, resolve, SchemaError, type JsonLiteral, type Property, type ProtocolSchema, type Shape } from "./protocol-schema.js";

const RESERVED = new Set(["v", "value", "at", "out", "i", "key", "item", "problem"]);

function access(object: string, name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? `${object}.${name}` : `${object}[${JSON.stringify(name)}]`;
}

function literal(value: unknown): string {
  return JSON.stringify(value);
}

/** A boolean expression: `x` is a valid value of `shape`; undefined for shapes that need a function. */
function condition(schema: ProtocolSchema, shape: Shape, x: string): string | undefined {
  const s = resolve(schema, shape);
  switch (s.kind) {
    case "string":
      return [`typeof ${x} === "string"`, ...(s.minLength !== undefined ? [`${x}.length >= ${s.minLength}`] : []), ...(s.maxLength !== undefined ? [`${x}.length <= ${s.maxLength}`] : [])].join(
        " && ",
      );
    case "integer":
    case "number":
      return [`typeof ${x} === "number"`, ...(s.kind === "integer" ? [`Number.isInteger(${x})`] : []), ...(s.minimum !== undefined ? [`${x} >= ${s.minimum}`] : [])].join(" && ");
    case "const":
      return `${x} === ${literal(s.value)}`;
    case "enum":
      return `(${s.values.map((v) => `${x} === ${literal(v)}`).join(" || ")})`;
    case "json":
      return `${x} !== undefined`;
    case "jsonObject":
      return `isObject(${x})`;
    default:
      return undefined;
  }
}

/** What a property's error says after its name. */
function problem(schema: ProtocolSchema, shape: Shape): string {
  const s = resolve(schema, shape);
  switch (s.kind) {
    case "string":
      if (s.minLength !== undefined && s.maxLength !== undefined) return `must be a string of ${s.minLength}-${s.maxLength} characters`;
      return s.minLength ? "must be a non-empty string" : "must be a string";
    case "integer":
    case "number":
      return `must be a ${s.minimum === 0 ? "non-negative " : ""}${s.kind === "integer" ? "integer" : "number"}`;
    case "const":
      return `must be ${literal(s.value)}`;
    case "enum":
      return `must be one of ${s.values.map(literal).join(", ")}`;
    case "json":
      return "is required";
    case "array":
      return "must be an array";
    default:
      return "must be an object";
  }
}

function missing(schema: ProtocolSchema, shape: Shape, x: string): string {
  return resolve(schema, shape).kind === "json" ? `${x} === undefined` : `${x} === undefined || ${x} === null`;
}

/** A default value as TypeScript source. */
function tsLiteral(value: JsonLiteral): string {
  if (Array.isArray(value)) return `[${value.map(tsLiteral).join(", ")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).map(([k, v]) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}: ${tsLiteral(v)}`);
    return entries.length === 0 ? "{}" : `{ ${entries.join(", ")} }`;
  }
  return JSON.stringify(value);
}

function fail(message: string): string {
  return `throw new FrameError(${message})`;
}

/** A decoder's statements: before its result's literal, the literal's fields, and optional properties after. */
interface Body {
  pre: string[];
  fields: string[];
  post: string[];
  usesV: boolean;
  usesAt: boolean;
}

class DecoderWriter {
  readonly functions: string[][] = [];
  private readonly done = new Set<string>();
  /** Discriminator keys a union already dispatched on, per member object: their consts need no check. */
  private readonly dispatched = new Map<string, Set<string>>();

  constructor(private readonly schema: ProtocolSchema) {}

  private queue(name: string, write: () => string[]): string {
    if (!this.done.has(name)) {
      this.done.add(name);
      const slot: string[] = [];
      this.functions.push(slot);
      slot.push(...write());
    }
    return name;
  }

  root(name: string): void {
    const shape = this.schema.definitions.get(name)?.shape;
    if (shape?.kind !== "union") throw new SchemaError(`${name} is not a union`);
    const key = shape.discriminator;
    this.queue(`decode${name}`, () => [
      `/** Decodes one ${name} frame (an object with a string \`${key}\`); throws FrameError when it does not match the schema. */`,
      `export function decode${name}(v: JsonObject): ${name} {`,
      `  switch (${access("v", key)}) {`,
      ...this.cases(shape.members, key, new Set([key]), (value) => literal(String(value))),
      "    default:",
      `      ${fail(`\`unknown frame ${key} \${JSON.stringify(${access("v", key)}).slice(0, 40)}\``)};`,
      "  }",
      "}",
    ]);
  }

  private cases(members: Shape[], key: string, keys: Set<string>, at: (value: string | number | boolean) => string): string[] {
    return members.flatMap((member) => {
      if (member.kind !== "ref") throw new SchemaError("decoded union members must be named definitions");
      const target = resolve(this.schema, member);
      const values = discriminatorValues(this.schema, member, key);
      if (values.length !== 1) throw new SchemaError(`${member.name}: members of a union must share one ${key}`);
      const value = values[0] as string | number | boolean;
      const fn = target.kind === "union" ? this.nestedUnion(member.name, new Set([...keys, target.discriminator])) : this.member(member.name, keys);
      return [`    case ${literal(value)}:`, `      return ${fn}(v, ${at(value)});`];
    });
  }

  private nestedUnion(name: string, keys: Set<string>): string {
    const shape = resolve(this.schema, { kind: "ref", name });
    if (shape.kind !== "union") throw new SchemaError(`${name} is not a union`);
    const key = shape.discriminator;
    const options = discriminatorValues(this.schema, shape, key).map(literal).join(", ");
    return this.queue(`decode${name}`, () => [
      `function decode${name}(v: JsonObject, at: string): ${name} {`,
      `  switch (${access("v", key)}) {`,
      ...this.cases(shape.members, key, keys, () => "at"),
      "    default:",
      `      ${fail(`at + ${literal(`.${key} must be one of ${options}`)}`)};`,
      "  }",
      "}",
    ]);
  }

  private member(name: string, keys: Set<string>): string {
    this.dispatched.set(name, keys);
    return this.queue(`decode${name}`, () => {
      const body = this.body(name, keys);
      // A frame with nothing to check (e.g. `stopped`) leaves its parameters unused.
      const [v, at] = [body.usesV ? "v" : "_v", body.usesAt ? "at" : "_at"];
      return [`function decode${name}(${v}: JsonObject, ${at}: string): ${name} {`, ...body.lines, "}"];
    });
  }

  /** A named object reached through a property: checks that it is an object first. */
  private referenced(name: string): string {
    if (this.dispatched.has(name)) throw new SchemaError(`${name} is both a union member and a property's type`);
    return this.queue(`decode${name}`, () => [
      `function decode${name}(value: unknown, at: string): ${name} {`,
      `  if (!isObject(value)) ${fail('at + " must be an object"')};`,
      "  const v = value;",
      ...this.body(name, new Set()).lines,
      "}",
    ]);
  }

  private body(name: string, keys: Set<string>): { lines: string[]; usesV: boolean; usesAt: boolean } {
    const shape = resolve(this.schema, { kind: "ref", name });
    if (shape.kind !== "object") throw new SchemaError(`${name} is not an object`);
    const body: Body = { pre: [], fields: [], post: [], usesV: false, usesAt: false };
    const { pre, fields, post } = body;
    for (const p of shape.properties) {
      if (!/^[A-Za-z][\w]*$/.test(p.name)) throw new SchemaError(`${name}.${p.name}: the generator needs property names that are identifiers`);
      if (keys.has(p.name) && p.shape.kind === "const") {
        fields.push(`${p.name}: ${literal(p.shape.value)}`);
        continue;
      }
      this.property(p, body);
    }
    const oneLine = `{ ${fields.join(", ")} }`;
    const object = oneLine.length <= 100 ? oneLine : ["{", ...fields.map((f) => `    ${f},`), "  }"].join("\n");
    const lines = post.length === 0 ? [...pre, `  return ${object};`] : [...pre, `  const out: ${name} = ${object};`, ...post, "  return out;"];
    return { lines, usesV: body.usesV, usesAt: body.usesAt };
  }

  private property(p: Property, body: Body): void {
    const { pre, fields, post } = body;
    /** A local named after the property holds its decoded value (when it needs statements to compute). */
    const local = (): string => {
      if (RESERVED.has(p.name)) throw new SchemaError(`${p.name}: the property's name is one of the decoder's own locals`);
      return p.name;
    };
    const x = `_${p.name}`;
    // Written on demand: a property that can never fail leaves `at` unused.
    const at = (): string => {
      body.usesAt = true;
      return `at + ${literal(`.${p.name}`)}`;
    };
    const error = (): string => {
      body.usesAt = true;
      return fail(`at + ${literal(`.${p.name} ${problem(this.schema, p.shape)}`)}`);
    };
    const absent = missing(this.schema, p.shape, x);
    const fallback = p.default === undefined ? undefined : tsLiteral(p.default.value);
    body.usesV = true;
    pre.push(`  const ${x} = ${access("v", p.name)};`);
    const test = condition(this.schema, p.shape, x);
    if (test !== undefined) {
      if (fallback !== undefined && p.lenient) fields.push(`${p.name}: ${test} ? ${x} : ${fallback}`);
      else if (fallback !== undefined) {
        // (any JSON value, null included, is valid: only a missing one takes the default)
        if (resolve(this.schema, p.shape).kind !== "json") pre.push(`  if (!(${absent} || ${test})) ${error()};`);
        fields.push(`${p.name}: ${absent} ? ${fallback} : ${x}`);
      } else if (p.required) {
        pre.push(`  if (!(${test})) ${error()};`);
        fields.push(`${p.name}: ${x}`);
      } else if (p.lenient) post.push(`  if (${test}) out.${p.name} = ${x};`);
      else {
        pre.push(`  if (!(${absent} || ${test})) ${error()};`);
        post.push(`  if (!(${absent})) out.${p.name} = ${x};`);
      }
      return;
    }
    const s = resolve(this.schema, p.shape);
    if (s.kind === "object" && p.shape.kind === "ref") {
      const call = `${this.referenced(p.shape.name)}(${x}, ${at()})`;
      if (fallback !== undefined && p.lenient) {
        pre.push(`  let ${local()}: ${p.shape.name};`, "  try {", `    ${p.name} = ${call};`, "  } catch {", `    ${p.name} = ${fallback};`, "  }");
        fields.push(p.name);
      } else if (fallback !== undefined) fields.push(`${p.name}: ${absent} ? ${fallback} : ${call}`);
      else if (p.required) fields.push(`${p.name}: ${call}`);
      else if (p.lenient) post.push("  try {", `    out.${p.name} = ${call};`, "  } catch {", "    // lenient: an invalid value is left out", "  }");
      else post.push(`  if (!(${absent})) out.${p.name} = ${call};`);
      return;
    }
    if (s.kind === "array" && p.required && fallback === undefined && !p.lenient) {
      body.usesAt = true;
      const item = s.items;
      if (item.kind !== "ref") throw new SchemaError(`${p.name}: array items must be a named definition`);
      pre.push(
        `  if (!Array.isArray(${x})) ${error()};`,
        `  for (let i = 0; i < ${x}.length; i++) {`,
        `    const problem = ${this.check(item.name)}(${x}[i]);`,
        `    if (problem !== undefined) ${fail(`\`\${at}.${p.name}[\${i}]\${problem}\``)};`,
        "  }",
      );
      fields.push(`${p.name}: ${x} as ${tsType(p.shape)}`);
      return;
    }
    if (s.kind === "map" && fallback !== undefined && p.lenient && s.lenientValues) {
      const valueTest = condition(this.schema, s.values, "item");
      if (valueTest === undefined) throw new SchemaError(`${p.name}: map values must be simple`);
      pre.push(
        `  const ${local()}: ${tsType(p.shape)} = {};`,
        `  if (isObject(${x})) {`,
        `    for (const key of Object.keys(${x})) {`,
        `      const item = ${x}[key];`,
        `      if (${valueTest}) ${p.name}[key] = item;`,
        "    }",
        "  }",
      );
      fields.push(p.name);
      return;
    }
    throw new SchemaError(`${p.name}: this combination of type, default and x-lenient is not supported by the generator`);
  }

  /** `check<Name>(v)`: undefined when `v` is valid, else the problem (".path must be a string"). */
  private check(name: string): string {
    return this.queue(`check${name}`, () => {
      const shape = resolve(this.schema, { kind: "ref", name });
      const lines = [`function check${name}(v: unknown): string | undefined {`, '  if (!isObject(v)) return " must be an object";'];
      if (shape.kind === "union") {
        const key = shape.discriminator;
        const options = discriminatorValues(this.schema, shape, key).map(literal).join(", ");
        lines.push(`  switch (${access("v", key)}) {`);
        for (const member of shape.members) {
          const [value] = discriminatorValues(this.schema, member, key);
          lines.push(`    case ${literal(value)}:`, ...this.checks(member, new Set([key]), "      "), "      return undefined;");
        }
        lines.push("    default:", `      return ${literal(`.${key} must be one of ${options}`)};`, "  }");
      } else lines.push(...this.checks(shape, new Set(), "  "), "  return undefined;");
      return [...lines, "}"];
    });
  }

  private checks(shape: Shape, keys: Set<string>, indentBy: string): string[] {
    const s = resolve(this.schema, shape);
    if (s.kind !== "object") throw new SchemaError("checked items must be objects or unions of objects");
    return s.properties
      .filter((p) => !(keys.has(p.name) && p.shape.kind === "const"))
      .map((p) => {
        const x = access("v", p.name);
        const test = condition(this.schema, p.shape, x);
        if (test === undefined || p.default !== undefined || p.lenient) throw new SchemaError(`${p.name}: checked items take simple properties without default or x-lenient`);
        const valid = p.required ? test : `${missing(this.schema, p.shape, x)} || ${test}`;
        return `${indentBy}if (!(${valid})) return ${literal(`.${p.name} ${problem(this.schema, p.shape)}`)};`;
      });
  }
}

export function emitTsDecoders(schema: ProtocolSchema): string[] {
  const writer = new DecoderWriter(schema);
  for (const root of schema.roots) writer.root(root);
  return writer.functions.flatMap((fn) => ["", ...fn]);
}
