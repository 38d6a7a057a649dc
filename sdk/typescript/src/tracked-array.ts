/**
 * Precise ops for the mutating Array methods of state arrays: push -> add at the index,
 * pop/shift -> remove, splice -> replace/remove/add, sort/reverse/fill/copyWithin -> replace of the
 * changed indexes. When the precise ops would outnumber the array itself, one `replace` of the
 * whole array is recorded instead. Called with `this` = a state array proxy; any other receiver
 * falls back to the native method.
 */
import type { Json } from "./json-value.js";

export interface ArrayHost {
  rawArray(value: unknown): Json[] | undefined;
  copyIn(value: unknown, pointer: string): Json;
  pathOf(raw: Json[]): string | undefined;
  record(op: "add" | "remove" | "replace", path: string, value?: Json): void;
  recordWhole(raw: Json[], base: string): void;
}

type Method = (this: unknown, ...args: unknown[]) => unknown;

function toInteger(value: unknown): number {
  const n = Math.trunc(Number(value));
  return Number.isNaN(n) ? 0 : n;
}

/** ES relative index: negative counts from the end, clamped to [0, length]. */
function relative(value: unknown, length: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = toInteger(value);
  return n < 0 ? Math.max(length + n, 0) : Math.min(n, length);
}

function tooMany(count: number, length: number): boolean {
  return count > Math.max(16, length);
}

export function arrayMutators(host: ArrayHost): ReadonlyMap<string, Method> {
  const copies = (base: string | undefined, items: unknown[], at: number): Json[] => items.map((item, i) => host.copyIn(item, `${base ?? ""}/${at + i}`));

  /** Records replaces for indexes whose element changed identity (sort, reverse, fill, copyWithin). */
  const recordChanged = (raw: Json[], base: string | undefined, before: readonly Json[]): void => {
    if (base === undefined) return;
    const changed: number[] = [];
    for (let i = 0; i < raw.length; i++) if (before[i] !== raw[i]) changed.push(i);
    if (tooMany(changed.length, raw.length / 2)) host.recordWhole(raw, base);
    else for (const i of changed) host.record("replace", `${base}/${i}`, raw[i]);
  };

  const wrap = (name: string, impl: (raw: Json[], base: string | undefined, args: unknown[], self: unknown) => unknown): [string, Method] => {
    const native = (Array.prototype as unknown as Record<string, Method>)[name] as Method;
    return [
      name,
      function (this: unknown, ...args: unknown[]): unknown {
        const raw = host.rawArray(this);
        if (!raw) return native.apply(this, args);
        return impl(raw, host.pathOf(raw), args, this);
      },
    ];
  };

  return new Map<string, Method>([
    wrap("push", (raw, base, items) => {
      for (const value of copies(base, items, raw.length)) {
        const index = raw.length;
        raw.push(value);
        if (base !== undefined) host.record("add", `${base}/${index}`, value);
      }
      return raw.length;
    }),
    wrap("pop", (raw, base) => {
      if (raw.length === 0) return undefined;
      const index = raw.length - 1;
      const value = raw.pop();
      if (base !== undefined) host.record("remove", `${base}/${index}`);
      return value;
    }),
    wrap("shift", (raw, base) => {
      if (raw.length === 0) return undefined;
      const value = raw.shift();
      if (base !== undefined) host.record("remove", `${base}/0`);
      return value;
    }),
    wrap("unshift", (raw, base, items) => {
      const values = copies(base, items, 0);
      raw.unshift(...values);
      if (base !== undefined) {
        if (tooMany(values.length, raw.length - values.length)) host.recordWhole(raw, base);
        else
          values.forEach((value, i) => {
            host.record("add", `${base}/${i}`, value);
          });
      }
      return raw.length;
    }),
    wrap("splice", (raw, base, args) => {
      const len = raw.length;
      const start = relative(args[0], len, 0);
      const deleteCount = args.length === 0 ? 0 : args.length === 1 ? len - start : Math.min(Math.max(toInteger(args[1]), 0), len - start);
      const values = copies(base, args.slice(2), start);
      const removed = raw.splice(start, deleteCount, ...values);
      if (base === undefined) return removed;
      const common = Math.min(deleteCount, values.length);
      if (tooMany(Math.max(deleteCount, values.length) - common, raw.length)) {
        host.recordWhole(raw, base);
        return removed;
      }
      for (let i = 0; i < common; i++) host.record("replace", `${base}/${start + i}`, values[i]);
      for (let i = common; i < deleteCount; i++) host.record("remove", `${base}/${start + common}`);
      for (let i = common; i < values.length; i++) host.record("add", `${base}/${start + i}`, values[i]);
      return removed;
    }),
    wrap("sort", (raw, base, args, self) => {
      const compare = args[0];
      if (compare !== undefined && typeof compare !== "function") throw new TypeError("sort comparator must be a function");
      const before = raw.slice();
      raw.sort(compare as ((a: Json, b: Json) => number) | undefined);
      recordChanged(raw, base, before);
      return self;
    }),
    wrap("reverse", (raw, base, _args, self) => {
      const before = raw.slice();
      raw.reverse();
      recordChanged(raw, base, before);
      return self;
    }),
    wrap("fill", (raw, base, args, self) => {
      const len = raw.length;
      const start = relative(args[1], len, 0);
      const end = relative(args[2], len, len);
      const before = raw.slice();
      for (let i = start; i < end; i++) raw[i] = host.copyIn(args[0], `${base ?? ""}/${i}`);
      recordChanged(raw, base, before);
      return self;
    }),
    wrap("copyWithin", (raw, base, args, self) => {
      const before = raw.slice();
      const layout = raw.slice().copyWithin(toInteger(args[0]), toInteger(args[1]), args[2] === undefined ? raw.length : toInteger(args[2]));
      for (let i = 0; i < raw.length; i++) if (layout[i] !== before[i]) raw[i] = host.copyIn(layout[i], `${base ?? ""}/${i}`);
      recordChanged(raw, base, before);
      return self;
    }),
  ]);
}
