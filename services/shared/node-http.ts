/** connect-node's request/response types (HTTP/1.1 or HTTP/2), which its index does not export. */
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";

export type NodeHandlerFn = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
export type NodeServerRequest = Parameters<NodeHandlerFn>[0];
export type NodeServerResponse = Parameters<NodeHandlerFn>[1];
