/**
 * How the inspection verbs print: aligned tables and colours for a person at a terminal, one JSON
 * value (or one JSON object per line for streams) for programs (`--json`, or any output that is not a
 * terminal). Colours follow the NO_COLOR / FORCE_COLOR conventions.
 */
export interface CliOutput {
  /** A person reads this: tables, colours, free text. */
  readonly human: boolean;
  readonly color: boolean;
  write(text: string): void;
}

export interface CliOutputOptions {
  json: boolean;
  isTTY: boolean;
  env: Record<string, string | undefined>;
  write(text: string): void;
}

export function cliOutput(options: CliOutputOptions): CliOutput {
  const human = !options.json && options.isTTY;
  const { NO_COLOR, FORCE_COLOR } = options.env;
  const forced = FORCE_COLOR === undefined || FORCE_COLOR === "" ? undefined : FORCE_COLOR !== "0" && FORCE_COLOR !== "false";
  const color = forced ?? (human && (NO_COLOR === undefined || NO_COLOR === ""));
  return { human, color, write: options.write };
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, gray: 90, bold: 1, dim: 2 } as const;
export type Colour = keyof typeof CODES;

export function paint(out: CliOutput, colour: Colour, text: string): string {
  return out.color ? `\u001b[${CODES[colour]}m${text}\u001b[0m` : text;
}

/** Visible width (colour codes excluded). */
function width(text: string): number {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes (ESC [ ... m)
  return [...text.replace(/\u001b\[[0-9;]*m/g, "")].length;
}

/** Columns padded to their widest cell; the header bold. */
export function table(out: CliOutput, header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((row) => width(row[i] ?? ""))));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + " ".repeat((widths[i] ?? 0) - width(cell))))
      .join("  ")
      .trimEnd();
  return [paint(out, "bold", line(header)), ...rows.map(line)].join("\n") + "\n";
}

/** The colour of an instance status or log level. */
export function statusColour(status: string): Colour {
  switch (status) {
    case "ready":
    case "info":
      return "green";
    case "busy":
    case "starting":
    case "warn":
      return "yellow";
    case "failed":
    case "error":
      return "red";
    case "hibernated":
    case "debug":
      return "blue";
    default:
      return "gray";
  }
}

/** "3.2 KiB" */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** "2026-12-06 13:40:02" of an RFC 3339 time (UTC), "" when unknown. */
export function shortTime(iso: string | undefined): string {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, "") : "";
}
