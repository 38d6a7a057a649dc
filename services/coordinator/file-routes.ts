/** FileService on a coordinator: reads an agent's Chronicle workspace (live or stopped agent). */
import type { ConnectRouter } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { InstanceManager } from "./instance-manager.js";
import type { Chronicle, FileContent, IterationMeta } from "./chronicle/chronicle.js";
import { FileService, type FileTarget } from "../../gen/podium/v1/file_service_pb.js";

export type ChronicleReader = Pick<Chronicle, "list" | "read" | "history" | "at" | "restore">;

export interface FileAccess {
  /** Runs `fn` with the agent's Chronicle (the live one, or one opened for the call). */
  withChronicle<T>(agentId: string, fn: (chronicle: ChronicleReader) => T): T;
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

export function fileContentToProto(file: FileContent) {
  return { ...file, size: BigInt(file.size), iteration: BigInt(file.iteration) };
}

export function iterationToProto(meta: IterationMeta) {
  return { iteration: BigInt(meta.iteration), timestamp: timestampFromMs(meta.timestamp), size: BigInt(meta.size), hash: meta.hash, change: meta.change };
}

export function fileRoutes(manager: InstanceManager, files: FileAccess | undefined) {
  const access = <T>(target: FileTarget | undefined, fn: (chronicle: ChronicleReader) => T): T => {
    const agentId = agentOf(manager, target);
    if (!files) throw new ConnectError("this coordinator has no versioned workspaces", Code.Unimplemented);
    return files.withChronicle(agentId, fn);
  };
  return (router: ConnectRouter) =>
    router.service(FileService, {
      async listFiles(req) {
        // "/" and "." name the workspace root; other paths are relative to it.
        const dir = req.path === "/" || req.path === "." ? "" : req.path;
        const entries = access(req.target, (c) => c.list(dir, req.depth || 1));
        return {
          entries: entries.map((e) => ({ ...e, size: BigInt(e.size), modifiedAt: timestampFromMs(e.modifiedAt), iteration: BigInt(e.iteration) })),
        };
      },
      async readFile(req) {
        return { file: fileContentToProto(access(req.target, (c) => c.read(req.path))) };
      },
      async fileHistory(req) {
        return { iterations: access(req.target, (c) => c.history(req.path)).map(iterationToProto) };
      },
      async fileAtIteration(req) {
        return { file: fileContentToProto(access(req.target, (c) => c.at(req.path, Number(req.iteration)))) };
      },
      async restoreFile(req) {
        return { iteration: iterationToProto(access(req.target, (c) => c.restore(req.path, Number(req.iteration)))) };
      },
    });
}
