/**
 * A real S3 API endpoint (s3rver, in-process) on a free port with a temp directory and one bucket,
 * plus an S3Client configured for it. pause()/resume() take the endpoint away and bring it back on
 * the same port with the same data.
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { S3Client } from "@aws-sdk/client-s3";

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
  /** Its winston logger (koa-logger writes every response to it). */
  logger: { silent: boolean };
}
type S3rverClass = new (options: { port: number; address: string; silent: boolean; directory: string; configureBuckets: { name: string }[] }) => S3rverInstance;

const require = createRequire(import.meta.url);
const S3rver = require("s3rver") as S3rverClass;

export interface S3Server {
  endpoint: string;
  port: number;
  client: S3Client;
  bucket: string;
  /** A new client for the endpoint (closed by stop()). */
  newClient(options?: { maxAttempts?: number }): S3Client;
  /** Takes the endpoint down (connections refused) until resume(). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export async function startS3(options: { bucket?: string; createBucket?: boolean } = {}): Promise<S3Server> {
  const bucket = options.bucket ?? "podium-test";
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "podium-s3-"));
  const launch = async (port: number): Promise<{ server: S3rverInstance; port: number }> => {
    const server = new S3rver({
      port,
      address: "127.0.0.1",
      silent: true,
      directory,
      configureBuckets: options.createBucket === false ? [] : [{ name: bucket }],
    });
    // `silent` only silences its console transport, which close() removes: a request still in flight then
    // (Litestream uploading while a test tears down) made winston complain on the console after the tests
    // were done, which fails a jest run. A silent logger drops everything, closed or not.
    server.logger.silent = true;
    const address = await server.run();
    return { server, port: address.port };
  };
  let running: S3rverInstance | undefined;
  const first = await launch(0);
  running = first.server;
  const port = first.port;
  const endpoint = `http://127.0.0.1:${port}`;
  const clients: S3Client[] = [];
  const newClient = (clientOptions: { maxAttempts?: number } = {}): S3Client => {
    const client = new S3Client({
      endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: clientOptions.maxAttempts ?? 2,
      requestHandler: { connectionTimeout: 2000, requestTimeout: 10_000 },
    });
    clients.push(client);
    return client;
  };
  const halt = async (): Promise<void> => {
    const server = running;
    running = undefined;
    if (!server) return;
    const closed = server.close();
    server.httpServer?.closeAllConnections();
    await closed;
  };
  return {
    endpoint,
    port,
    bucket,
    client: newClient(),
    newClient,
    pause: halt,
    async resume() {
      if (!running) running = (await launch(port)).server;
    },
    async stop() {
      for (const client of clients) client.destroy();
      await halt();
      fs.rmSync(directory, { recursive: true, force: true });
    },
  };
}
