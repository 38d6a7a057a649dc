/**
 * Request ids and the one log line of a failed request, for the gateway's edges (REST and Connect /
 * gRPC / gRPC-Web). Every response carries `x-request-id` — the caller's own when it sent a usable one,
 * else a new one — and a request that fails is logged once, at the edge, with that id, its status and
 * the whole cause chain: `error` for server-side failures (5xx, INTERNAL, UNKNOWN, DATA_LOSS,
 * UNAVAILABLE), `debug` for the client's own (4xx). What the client gets back is unchanged (the 004
 * contract's `{error:{code,message}}`, never a host path); the id is how the two are matched.
 */
import crypto from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "./logger.js";
import { causeChain, errorMessage } from "./errors.js";

export const REQUEST_ID_HEADER = "x-request-id";

const USABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const SERVER_SIDE: ReadonlySet<Code> = new Set([Code.Internal, Code.Unknown, Code.DataLoss, Code.Unavailable]);

/** The caller's request id when it is a short token, else a new random one. */
export function requestIdFrom(header: string | null | undefined): string {
  return header && USABLE_ID.test(header) ? header : `req_${crypto.randomBytes(9).toString("base64url")}`;
}

export interface FailedRequest {
  requestId: string;
  /** "POST /api/v1/instances", "podium.v1.InstanceService/SendMessage". */
  what: string;
  /** HTTP status (REST) or the Connect code's name. */
  status: number | string;
  serverSide: boolean;
  err: unknown;
}

export function logFailedRequest(logger: Logger, failed: FailedRequest): void {
  const chain = causeChain(failed.err);
  const error = (chain.length > 0 ? chain : [failed.err]).map(errorMessage).join(" <- caused by: ");
  const fields = { request_id: failed.requestId, request: failed.what, status: failed.status, error };
  if (failed.serverSide) logger.error("request failed", fields);
  else logger.debug("request refused", fields);
}

/** Connect / gRPC / gRPC-Web: the id in the response headers (or the error's metadata), failures logged. */
export function requestLogInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const requestId = requestIdFrom(req.header.get(REQUEST_ID_HEADER));
    try {
      const res = await next(req);
      res.header.set(REQUEST_ID_HEADER, requestId);
      return res;
    } catch (err) {
      // As the handler would send it: what is not a ConnectError is "internal error" to the client.
      const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
      error.metadata.set(REQUEST_ID_HEADER, requestId);
      logFailedRequest(logger, { requestId, what: `${req.service.typeName}/${req.method.name}`, status: Code[error.code], serverSide: SERVER_SIDE.has(error.code), err });
      throw error;
    }
  };
}
