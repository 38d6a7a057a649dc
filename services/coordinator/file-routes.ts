/** FileService on a coordinator: reads an agent's Chronicle workspace (live or stopped agent). */
import type { ConnectRouter } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { InstanceManager } from "./instance-manager.js";
import type { Chronicle, FileContent, IterationMeta } from "./chronicle/chronicle.js";
import { FileService, type FileTarget } from "../../gen/podium/v1/file_service_pb.js";

export type ChronicleReader = Pick<Chronicle, "list" | "read" | "history" | "at" | "restore" | "stat" | "openBlobStream">;

export interface FileAccess {
  /** Runs `fn` with the agent's Chronicle (the live one, or one opened for the call). */
  withChronicle<T>(agentId: string, fn: (chronicle: ChronicleReader) => T): T;
  /** The agent's Chronicle for work that outlives one tick (a download); call release() when done. */
  acquire(agentId: string): { chronicle: ChronicleReader; release(): void };
  /**
   * Like withChronicle, for calls that write the workspace (restore): a stopped agent's disk volume is
   * mounted for the call (unmounted, its workspace is absent and a capture would fail).
   */
  withWorkspace<T>(agentId: string, fn: (chronicle: ChronicleReader) => T, signal?: AbortSignal): Promise<T>;
}

/** Files larger than this are not returned inline by ReadFile / FileAtIteration (use DownloadFile). */
export const MAX_INLINE_FILE_BYTES = 16 * 1024 * 1024;

function checkInline(chronicle: ChronicleReader, filePath: string, iteration?: number): void {
  const { size } = chronicle.stat(filePath, iteration);
  if (size > MAX_INLINE_FILE_BYTES) {
    throw new ConnectError(`${filePath} is ${size} bytes, over the ${MAX_INLINE_FILE_BYTES}-byte inline limit; download it with ?raw=1 (FileService.DownloadFile)`, Code.ResourceExhausted);
  }
}

function agentOf(manager: InstanceManager, target: FileTarget | undefined): string {
  switch (target?.target.case) {
    case "instanceId":
      return manager.require(target.target.value).agentId;
    case "agentId":
      return target.target.value;
    default:
      throw new ConnectError("target (instance_id or agent_id) is required", Code.InvalidArgument);
  }
}

/** A file's content as the proto carries it; "binary": none inline, the raw bytes follow (DownloadFile). */
export function fileContentToProto(file: Omit<FileContent, "encoding"> & { encoding: FileContent["encoding"] | "binary" }) {
  return { ...file, size: BigInt(file.size), iteration: BigInt(file.iteration) };
}

export function iterationToProto(meta: IterationMeta) {
  return { iteration: BigInt(meta.iteration), timestamp: timestampFromMs(meta.timestamp), size: BigInt(meta.size), hash: meta.hash, change: meta.change };
}

export function fileRoutes(manager: InstanceManager, files: FileAccess | undefined) {
  /** The agent a request names, once a start answered before `ready` is over (what its onStart wrote is there). */
  const settledAgent = async (target: FileTarget | undefined, signal: AbortSignal): Promise<{ agentId: string; files: FileAccess }> => {
    const agentId = agentOf(manager, target);
    if (!files) throw new ConnectError("this coordinator has no versioned workspaces", Code.Unimplemented);
    await manager.startSettled(agentId, signal);
    return { agentId, files };
  };
  const access = async <T>(target: FileTarget | undefined, signal: AbortSignal, fn: (chronicle: ChronicleReader) => T): Promise<T> => {
    const { agentId, files } = await settledAgent(target, signal);
    return files.withChronicle(agentId, fn);
  };
  return (router: ConnectRouter) =>
    router.service(FileService, {
      async listFiles(req, ctx) {
        // "/" and "." name the workspace root; other paths are relative to it.
        const dir = req.path === "/" || req.path === "." ? "" : req.path;
        const entries = await access(req.target, ctx.signal, (c) => c.list(dir, req.depth || 1));
        return {
          entries: entries.map((e) => ({ ...e, size: BigInt(e.size), modifiedAt: timestampFromMs(e.modifiedAt), iteration: BigInt(e.iteration) })),
        };
      },
      async readFile(req, ctx) {
        return {
          file: fileContentToProto(
            await access(req.target, ctx.signal, (c) => {
              checkInline(c, req.path);
              return c.read(req.path);
            }),
          ),
        };
      },
      async fileHistory(req, ctx) {
        return { iterations: (await access(req.target, ctx.signal, (c) => c.history(req.path))).map(iterationToProto) };
      },
      async fileAtIteration(req, ctx) {
        return {
          file: fileContentToProto(
            await access(req.target, ctx.signal, (c) => {
              checkInline(c, req.path, Number(req.iteration));
              return c.at(req.path, Number(req.iteration));
            }),
          ),
        };
      },
      async *downloadFile(req, ctx) {
        const { agentId, files } = await settledAgent(req.target, ctx.signal);
        const { chronicle, release } = files.acquire(agentId);
        try {
          const { file, stream } = chronicle.openBlobStream(req.path, req.iteration > 0n ? Number(req.iteration) : undefined);
          // The bytes follow, raw, in `data`: "binary", not the base64 of an inline `content`.
          yield { file: fileContentToProto({ ...file, content: "", encoding: "binary" }) };
          for await (const chunk of stream) {
            if (ctx.signal.aborted) break;
            yield { data: chunk as Buffer };
          }
        } finally {
          release();
        }
      },
      async restoreFile(req, ctx) {
        const { agentId, files } = await settledAgent(req.target, ctx.signal);
        const meta = await files.withWorkspace(agentId, (c) => c.restore(req.path, Number(req.iteration)), ctx.signal);
        return { iteration: iterationToProto(meta) };
      },
    });
}
