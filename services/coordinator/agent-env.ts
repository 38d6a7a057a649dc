/**
 * The rule for `environment` and `secrets` of CreateInstance (docs/security.md): names are C identifiers;
 * PODIUM_* is the platform's; names that change how a dynamic loader, shell or language runtime behaves
 * are refused, so no variable can make code other than the agent's own run — not in a host-side process
 * (they never see these values anyway: the runner applies them inside the sandbox) and not in the
 * agent's interpreter before the SDK has started.
 */
import { Code, ConnectError } from "@connectrpc/connect";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED = /^PODIUM_/;

/** Prefixes and exact names refused, with the reason given in the error. */
const REFUSED: { test: RegExp; why: string }[] = [
  { test: /^(LD_|DYLD_)/, why: "changes what the dynamic loader loads" },
  { test: /^(GLIBC_TUNABLES|GCONV_PATH|LOCPATH|NLSPATH|MALLOC_[A-Z_]*|HOSTALIASES|RESOLV_HOST_CONF)$/, why: "changes how the C library behaves" },
  { test: /^(NODE_OPTIONS|NODE_PATH|NODE_REPL_EXTERNAL_MODULE|NODE_V8_COVERAGE|UV_THREADPOOL_SIZE)$/, why: "changes how the JavaScript runtime starts" },
  { test: /^BUN_/, why: "changes how Bun starts" },
  { test: /^PYTHON/, why: "changes how Python starts" },
  { test: /^(PERL5LIB|PERL5OPT|PERLLIB|RUBYOPT|RUBYLIB|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|JDK_JAVA_OPTIONS)$/, why: "changes how a language runtime starts" },
  { test: /^(BASH_ENV|ENV|BASH_FUNC_.*|SHELLOPTS|BASHOPTS|PS4|IFS|CDPATH)$/, why: "changes what a shell runs" },
];

/** Why `name` may not be set for an agent, or undefined when it may. */
export function refusedEnvName(name: string): string | undefined {
  if (!NAME.test(name)) return "is not a valid variable name";
  if (RESERVED.test(name)) return "is reserved (PODIUM_*)";
  return REFUSED.find((rule) => rule.test.test(name))?.why;
}

/** Throws INVALID_ARGUMENT naming the first variable of `env` that an agent may not be given. */
export function validateAgentEnv(field: "environment" | "secrets", env: Record<string, string> | undefined): void {
  for (const [key, value] of Object.entries(env ?? {})) {
    const refused = refusedEnvName(key);
    if (refused) throw new ConnectError(`${field}: ${JSON.stringify(key.slice(0, 64))} ${refused}; see docs/security.md`, Code.InvalidArgument);
    if (typeof value !== "string" || value.includes("\0")) throw new ConnectError(`${field}: ${key} must be a string without NUL bytes`, Code.InvalidArgument);
  }
}
