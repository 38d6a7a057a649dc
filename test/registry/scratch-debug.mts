import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { extractBundle, packBundle } from "/work/main/services/registry/index.js";
import * as os from "node:os";
import { Header } from "tar";
const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "podium-"));
function tarEntry(data: any, body = Buffer.alloc(0)) { const b = Buffer.alloc(512); new Header({ mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: body.length, type: "File", ...data }).encode(b, 0); return Buffer.concat([b, body, Buffer.alloc((512 - (body.length % 512)) % 512)]); }
const tarFile = (p: string, c: string | Buffer, mode = 0o644) => tarEntry({ path: p, mode }, Buffer.from(c));
const manifestJson = (o = {}) => JSON.stringify({ name: "echo", version: "1.0.0", runtime: "python", entry: "main.py", ...o });
const validEntries = (prefix = "") => [tarFile(`${prefix}podium.json`, manifestJson()), tarFile(`${prefix}main.py`, "print('hi')\n")];
const tarGz = (entries: Buffer[]) => zlib.gzipSync(Buffer.concat([...entries, Buffer.alloc(1024)]));
function makeBundle(dir: string, extra: Record<string,string>) { for (const [k, v] of Object.entries({ "podium.json": manifestJson(), "main.py": "x", ...extra })) { fs.mkdirSync(path.dirname(path.join(dir, k)), { recursive: true }); fs.writeFileSync(path.join(dir, k), v); } return dir; }
const root = tempDir();
const t0 = Date.now();
async function tryit(label: string, archive: Buffer, limits?: object) {
  const dest = path.join(root, label.replace(/\W/g, "_"));
  const timer = setTimeout(() => { console.log("HANG", label); process.exit(1); }, 5000);
  try { const r = await extractBundle(archive, dest, limits); console.log(label, "OK", r.digest, r.files); }
  catch (e) { console.log(label, "ERR", (e as Error).message); }
  clearTimeout(timer);
}
await tryit("valid", tarGz(validEntries()));
await tryit("dotdot", tarGz([...validEntries(), tarFile("../evil.py", "x")]));
const src = makeBundle(path.join(root, "src"), { "x/y.py": "1" });
await tryit("packed", await packBundle(src));
console.log(Date.now() - t0);
fs.rmSync(root, { recursive: true, force: true });
