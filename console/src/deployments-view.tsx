/**
 * Deployments with their versions and digests, and an upload: drop a bundle folder (packed here, as
 * `podium deploy` packs it) or a .tar.gz, or pick an archive or a folder; it goes to `POST /api/v1/deployments`.
 */
import { useState } from "preact/hooks";
import { api, describeError } from "./api-client.js";
import type { Deployment } from "./api-types.js";
import { filesOfEntry, filesOfPickedFolder, packBundle } from "./bundle-packer.js";
import { usePolled } from "./use-polled.js";

async function archiveOf(data: DataTransfer): Promise<Blob> {
  const item = [...data.items].find((i) => i.kind === "file");
  const entry = item?.webkitGetAsEntry();
  if (entry?.isDirectory) return packBundle(await filesOfEntry(entry as FileSystemDirectoryEntry));
  const file = data.files[0];
  if (!file) throw new Error("drop a bundle folder or a .tar.gz archive");
  return file;
}

export function DeploymentsView() {
  const deployments = usePolled(() => api<{ deployments: Deployment[] }>("GET", "/api/v1/deployments"), [], 5000);
  const [over, setOver] = useState(false);
  const [status, setStatus] = useState<{ text: string; error?: boolean } | undefined>(undefined);
  const upload = (archive: Promise<Blob>) => {
    setStatus({ text: "Uploading…" });
    archive
      .then((blob) => api<Deployment>("POST", "/api/v1/deployments", blob))
      .then((d) => {
        setStatus({ text: `${d.created ? "Deployed" : "Already deployed"} ${d.deployment_id} (${d.digest})` });
        deployments.reload();
      })
      .catch((err: unknown) => setStatus({ text: describeError(err), error: true }));
  };
  const list = [...(deployments.data?.deployments ?? [])].sort((a, b) => a.name.localeCompare(b.name) || b.created_at.localeCompare(a.created_at));
  return (
    <section>
      <h2>Deployments</h2>
      {/* biome-ignore lint/a11y/noStaticElementInteractions: the drop zone takes dragged files; its input and button below are the keyboard path */}
      <div
        class={`dropzone ${over ? "over" : ""}`}
        data-testid="dropzone"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          if (e.dataTransfer) upload(archiveOf(e.dataTransfer));
        }}
      >
        <p>Drop a bundle folder (with its podium.json) or a .tar.gz here to deploy it.</p>
        <label class="inline">
          or pick an archive:{" "}
          <input
            type="file"
            name="bundle"
            accept=".tar.gz,.tgz,application/gzip"
            onChange={(e) => {
              const file = e.currentTarget.files?.[0];
              if (file) upload(Promise.resolve(file));
              e.currentTarget.value = "";
            }}
          />
        </label>{" "}
        <label class="inline">
          or a bundle folder:{" "}
          <input
            type="file"
            name="bundle-folder"
            {...{ webkitdirectory: true }}
            onChange={(e) => {
              const list = e.currentTarget.files;
              if (list && list.length > 0) upload(filesOfPickedFolder(list).then(packBundle));
              e.currentTarget.value = "";
            }}
          />
        </label>
      </div>
      {status && (
        <p class={status.error ? "error" : "ok"} data-testid="upload-status">
          {status.text}
        </p>
      )}
      {deployments.error && <p class="error">{deployments.error}</p>}
      <table class="table">
        <thead>
          <tr>
            <th>Deployment</th>
            <th>Name</th>
            <th>Version</th>
            <th>Runtime</th>
            <th>Entry</th>
            <th>Digest</th>
            <th>Size</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {list.map((d) => (
            <tr key={d.deployment_id} data-deployment={d.deployment_id}>
              <td>{d.deployment_id}</td>
              <td>{d.name}</td>
              <td>{d.version}</td>
              <td>{d.runtime}</td>
              <td class="mono">{d.entry}</td>
              <td class="mono small" title={d.digest}>
                {d.digest.slice(0, 23)}…
              </td>
              <td>{d.size.toLocaleString()} B</td>
              <td>{new Date(d.created_at).toLocaleString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
