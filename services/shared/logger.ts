/** Structured logging: one JSON object per line. Never pass secrets in fields. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LoggerLevel = keyof typeof LEVELS | "silent";

/** `--log-level` / PODIUM_LOG_LEVEL (default info); throws a message naming the bad value. */
export function parseLogLevel(text: string | undefined): LoggerLevel {
  const level = text ?? "info";
  if (level !== "silent" && !(level in LEVELS)) throw new Error(`--log-level must be debug, info, warn, error or silent, got ${level}`);
  return level as LoggerLevel;
}

export interface LoggerOptions {
  level?: LoggerLevel;
  write?: (line: string) => void;
  fields?: LogFields;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = options.level === "silent" ? Infinity : LEVELS[options.level ?? "info"];
  const write = options.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const base = options.fields ?? {};
  const emit = (level: keyof typeof LEVELS, msg: string, fields?: LogFields) => {
    if (LEVELS[level] < threshold) return;
    write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields }));
  };
  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
  };
}

export const silentLogger: Logger = createLogger({ level: "silent" });
