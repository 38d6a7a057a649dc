/** `podium deploy DIR --url URL`: packs a bundle directory and uploads it to a gateway. */
import fs from "node:fs";
import path from "node:path";
import { packBundle } from "../registry/bundle-archive.js";
import { MANIFEST_FILE } from "../registry/bundle-manifest.js";
import { readGatewayJson } from "./gateway-response.js";

export interface DeployOptions {
  dir: string;
  url: string;
  apiKey?: string | undefined;
  /** Progress and result lines (stderr by default). */
  write?: (line: string) => void;
  signal?: AbortSignal;
}

export interface DeployResult {
  deployment_id: string;
  digest: string;
  created: boolean;
  size: number;
}

function formatBytes(n: number): string {
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export async function deploy(options: DeployOptions): Promise<DeployResult> {
  const write = options.write ?? ((line: string) => process.stderr.write(line + "\n"));
  if (!fs.existsSync(path.join(options.dir, MANIFEST_FILE))) {
    throw new Error(`${options.dir} has no ${MANIFEST_FILE}; a bundle is a directory with podium.json and its code`);
  }
  const archive = await packBundle(options.dir);
  write(`packed ${options.dir} (${formatBytes(archive.length)})`);
  const chunkSize = 256 * 1024;
  let sent = 0;
  let lastPercent = -1;
  const showProgress = archive.length > 1024 * 1024;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= archive.length) {
        controller.close();
        return;
      }
      const chunk = archive.subarray(sent, Math.min(sent + chunkSize, archive.length));
      sent += chunk.length;
      const percent = Math.floor((sent / archive.length) * 100);
      if (showProgress && percent !== lastPercent && percent % 10 === 0) {
        lastPercent = percent;
        write(`uploading ${percent}% (${formatBytes(sent)} of ${formatBytes(archive.length)})`);
      }
      controller.enqueue(chunk);
    },
  });
  const headers: Record<string, string> = { "content-type": "application/gzip", "content-length": String(archive.length) };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  const res = await fetch(new URL("/api/v1/deployments", options.url), {
    method: "POST",
    headers,
    body,
    duplex: "half",
    ...(options.signal ? { signal: options.signal } : {}),
  } as RequestInit);
  const result = await readGatewayJson<DeployResult>(res, "upload");
  write(`${result.created ? "deployed" : "unchanged"} ${result.deployment_id} (${result.digest})`);
  return result;
}
