/** grpc-js test helpers: protobuf-es codecs, a promise-based unary call and a pull-style stream reader. */
import type * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

export interface Codec<T> {
  serialize(value: T): Buffer;
  deserialize(bytes: Buffer): T;
}

/** grpc-js (de)serializers from a protobuf-es schema (generated or built from reflection). */
export function codec<D extends DescMessage>(schema: D): Codec<MessageShape<D>> {
  return {
    serialize: (value) => Buffer.from(toBinary(schema, value)),
    deserialize: (bytes) => fromBinary(schema, bytes),
  };
}

export function unaryCall<I, O>(client: grpc.Client, path: string, input: Codec<I>, output: Codec<O>, request: I): Promise<O> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, input.serialize, output.deserialize, request, (error, response) => {
      if (error !== null) reject(error);
      else if (response === undefined) reject(new Error(`${path}: no response`));
      else resolve(response);
    });
  });
}

/** Pulls messages off a grpc-js readable stream one by one, with a timeout per read. */
export class StreamReader<T> {
  private readonly buffered: T[] = [];
  private waiting: ((value: T | undefined) => void) | undefined;
  private finished = false;
  readonly status: Promise<grpc.StatusObject>;

  constructor(stream: grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>) {
    stream.on("data", (message: T) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      if (waiting !== undefined) waiting(message);
      else this.buffered.push(message);
    });
    // A cancelled or failed call also emits "error"; the final status is what tests look at.
    stream.on("error", () => undefined);
    this.status = new Promise((resolve) => {
      stream.on("status", (status: grpc.StatusObject) => {
        this.finished = true;
        this.waiting?.(undefined);
        this.waiting = undefined;
        resolve(status);
      });
    });
  }

  /** The next message; undefined if the stream ended first. Rejects after `timeoutMs`. */
  next(timeoutMs = 5000): Promise<T | undefined> {
    const message = this.buffered.shift();
    if (message !== undefined) return Promise.resolve(message);
    if (this.finished) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`no stream message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting = (value) => {
        clearTimeout(timer);
        resolve(value);
      };
    });
  }
}
