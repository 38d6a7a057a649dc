/**
 * CoordinatorService.SendMessages, the coordinator's side of the gateway's message stream: each request
 * is handled as InstanceService.SendMessage would handle it (the same function), as soon as it arrives
 * and concurrently with the others, and answered with its id when it settles. A message of one
 * WebSocket waits for the previous one's answer at the gateway (ordered-frames.ts), so messages of one
 * client reach the agent in order as before.
 *
 * A `cancel` aborts a message's handling as a cancelled call would; so does the stream's end (the
 * gateway went away). When the coordinator shuts down (`closing`), the stream handles no more requests,
 * answers the messages being handled and ends: the gateway knows the rest were not handled, and opens a
 * new stream for its next message.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { InstanceService, type SendMessageRequest, type SendMessageResponseSchema } from "../../gen/podium/v1/instance_service_pb.js";
import type { CallErrorSchema, SendMessagesRequest, SendMessagesResponseSchema } from "../../gen/podium/v1/coordinator_service_pb.js";
import { AsyncQueue } from "../shared/async-queue.js";
import { RETRY_AFTER_HEADER } from "../shared/errors.js";

type SendMessageAnswer = MessageInitShape<typeof SendMessageResponseSchema>;
type StreamAnswer = MessageInitShape<typeof SendMessagesResponseSchema>;

/** What a message's span is named and linked by: the call it is (a SendMessage), its protocol and its metadata. */
export type CallInfo = Pick<HandlerContext, "service" | "method" | "protocolName" | "requestHeader">;

/** SendMessage's work, shared by the unary call and the stream; `signal` aborts when the caller gives up on it. */
export type SendOne = (req: SendMessageRequest, call: CallInfo, signal: AbortSignal | undefined) => Promise<SendMessageAnswer>;

/** Most messages one stream may have in handling at once; more is a caller that does not wait for answers. */
export const MAX_IN_FLIGHT = 65_536;

const NO_HEADERS = new Headers();

/** The error a message ended with, as its stream answer: code, message and metadata, as a unary call's end carries them. */
export function callErrorOf(err: unknown): MessageInitShape<typeof CallErrorSchema> {
  const error = ConnectError.from(err);
  const metadata: Record<string, string> = {};
  error.metadata.forEach((value, key) => {
    metadata[key] = value;
  });
  return { code: error.code, message: error.rawMessage, metadata };
}

export function sendMessagesHandler(send: SendOne, closing: AbortSignal) {
  return async function* sendMessages(requests: AsyncIterable<SendMessagesRequest>, ctx: HandlerContext): AsyncGenerator<StreamAnswer> {
    const answers = new AsyncQueue<StreamAnswer>(Number.MAX_SAFE_INTEGER);
    const inFlight = new Map<bigint, AbortController>();
    let ended = false;
    const settleIfDone = (): void => {
      if (ended && inFlight.size === 0) answers.end();
    };
    const stop = (): void => {
      ended = true;
      settleIfDone();
    };
    const gone = (): void => {
      for (const controller of inFlight.values()) controller.abort(new ConnectError("the message stream ended", Code.Canceled));
      stop();
    };
    const handle = (req: SendMessagesRequest): void => {
      const { id, kind } = req;
      if (kind.case === "cancel") {
        inFlight.get(id)?.abort(new ConnectError("the operation was cancelled", Code.Canceled));
        return;
      }
      const refuse = (error: ConnectError): void => answers.push({ id, result: { case: "error", value: callErrorOf(error) } });
      if (kind.case !== "message") return refuse(new ConnectError("message is required", Code.InvalidArgument));
      if (inFlight.has(id)) return refuse(new ConnectError(`message id ${id} is already being handled on this stream`, Code.InvalidArgument));
      if (inFlight.size >= MAX_IN_FLIGHT) {
        return refuse(new ConnectError(`more than ${MAX_IN_FLIGHT} messages in handling on one stream`, Code.ResourceExhausted, { [RETRY_AFTER_HEADER]: "1" }));
      }
      const controller = new AbortController();
      inFlight.set(id, controller);
      const requestHeader = Object.keys(req.headers).length > 0 ? new Headers(req.headers) : NO_HEADERS;
      const call: CallInfo = { service: InstanceService, method: InstanceService.method.sendMessage, protocolName: ctx.protocolName, requestHeader };
      send(kind.value, call, controller.signal)
        .then(
          (response) => answers.push({ id, result: { case: "response", value: response } }),
          (err: unknown) => answers.push({ id, result: { case: "error", value: callErrorOf(err) } }),
        )
        .finally(() => {
          inFlight.delete(id);
          settleIfDone();
        });
    };
    if (closing.aborted) return;
    closing.addEventListener("abort", stop, { once: true });
    ctx.signal.addEventListener("abort", gone, { once: true });
    void (async () => {
      try {
        for await (const req of requests) {
          if (ended) break;
          handle(req);
        }
      } catch {
        // The caller's side broke: `ctx.signal` aborts with it.
      } finally {
        stop();
      }
    })();
    try {
      yield* answers;
    } finally {
      closing.removeEventListener("abort", stop);
      ctx.signal.removeEventListener("abort", gone);
    }
  };
}
