/**
 * API-key authentication for the gateway (client keys) and coordinators (the cluster secret).
 * Keys are compared in constant time over their SHA-256 digests, so neither content nor length leaks.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

export interface HeaderSource {
  get(name: string): string | null | undefined;
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/**
 * Services callable without a key: health (load balancers) and reflection (grpcurl / buf curl).
 * Reflection only describes the public protos, which ship with Podium.
 */
export const OPEN_SERVICES: ReadonlySet<string> = new Set(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);

export class ApiKeyAuth {
  private readonly digests: Buffer[];

  /** An empty list disables authentication (dev mode on loopback only). */
  constructor(keys: readonly string[]) {
    this.digests = keys.filter((k) => k.length > 0).map(digest);
  }

  get enabled(): boolean {
    return this.digests.length > 0;
  }

  /** True when `candidate` equals one of the keys. Checks every key so timing does not depend on which. */
  verify(candidate: string | undefined): boolean {
    if (!this.enabled) return true;
    if (!candidate) return false;
    const d = digest(candidate);
    let ok = false;
    for (const key of this.digests) ok = timingSafeEqual(key, d) || ok;
    return ok;
  }

  /** `Authorization: Bearer <key>` or `x-api-key: <key>`; `queryKey` for browsers' WebSocket URLs. */
  static extract(headers: HeaderSource, queryKey?: string | null): string | undefined {
    const authorization = headers.get("authorization");
    if (authorization) {
      const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
      if (match?.[1]) return match[1].trim();
    }
    const header = headers.get("x-api-key");
    if (header) return header.trim();
    return queryKey ?? undefined;
  }

  /** Connect interceptor: UNAUTHENTICATED unless the call carries a valid key. `open` services skip the check. */
  interceptor(open: ReadonlySet<string> = new Set()): Interceptor {
    return (next) => async (req) => {
      if (!this.enabled || open.has(req.service.typeName)) return next(req);
      const key = ApiKeyAuth.extract(req.header);
      if (!key) throw new ConnectError("missing API key: send 'authorization: Bearer <key>' or 'x-api-key'", Code.Unauthenticated);
      if (!this.verify(key)) throw new ConnectError("invalid API key", Code.Unauthenticated);
      return next(req);
    };
  }
}

/** Node's IncomingHttpHeaders as a HeaderSource. */
export function nodeHeaders(headers: Record<string, string | string[] | undefined>): HeaderSource {
  return {
    get(name: string) {
      const value = headers[name.toLowerCase()];
      return Array.isArray(value) ? value[0] : value;
    },
  };
}
