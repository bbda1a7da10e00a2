// Source archives: a function folder packed into one deterministic byte string (the CLI uploads
// it, the api stores it by digest) and unpacked again, with every path checked, before a build.
//
// Format ("KUMOSRC1"), gzip-compressed as a whole (Node's gzip writes mtime 0, so no timestamp):
//   magic   8 bytes  ASCII "KUMOSRC1"
//   count   u32 BE   number of files
//   count × { pathLength u32 BE, path UTF-8 (relative, "/"-separated), size u32 BE, content }
// Files are sorted by path (UTF-16 code unit order); directories, modes and times are not stored,
// so the same folder always packs to the same bytes.

import { lstat, mkdir, readdir, readFile, realpath, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { gunzip, gzip } from "node:zlib";
import { KumoError } from "../model/index.ts";

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

const MAGIC = "KUMOSRC1";
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const MiB = 1024 * 1024;

/** The default limit on the total size of a function folder's files (50 MiB). */
export const DEFAULT_MAX_SOURCE_BYTES = 50 * MiB;

/** A packed function folder. */
export interface PackedSource {
  /** The archive (gzip of the KUMOSRC1 format). */
  bytes: Uint8Array;
  files: number;
  /** Sum of the files' sizes before compression. */
  totalBytes: number;
}

interface SourceFile {
  /** Relative, "/"-separated. */
  rel: string;
  /** Where to read it (a symlink's target). */
  abs: string;
  size: number;
}

/** Directory names never packed, anywhere in the tree. */
const SKIPPED_DIRS = new Set([".git", ".kumo"]);
/** Directory names never packed directly inside a node_modules folder (caches and shims). */
const SKIPPED_IN_NODE_MODULES = new Set([".cache", ".bin"]);

/** Packs a function folder into a deterministic archive; KUMO_E_BODY_TOO_LARGE over maxBytes (default 50 MiB). */
export async function packSource(dir: string, options: { maxBytes?: number } = {}): Promise<PackedSource> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_SOURCE_BYTES;
  const shown = displayPath(dir);
  const root = await folderRoot(dir, shown);
  const files: SourceFile[] = [];
  await collect(root, root, "", new Set([root]), files);
  files.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));

  const totalBytes = files.reduce((sum, f) => sum + f.size, 0);
  if (totalBytes > maxBytes) {
    const largest = [...files].sort((a, b) => b.size - a.size).slice(0, 3);
    const list = largest.map((f) => `${f.rel} (${formatSize(f.size)})`).join(", ");
    throw new KumoError(
      "KUMO_E_BODY_TOO_LARGE",
      `function folder ${shown} is ${formatSize(totalBytes)}, over the ${formatSize(maxBytes)} limit: ` +
        `remove large files or move them out of the folder (largest: ${list})`,
    );
  }

  const chunks: Uint8Array[] = [Buffer.from(MAGIC, "ascii"), u32(files.length)];
  for (const f of files) {
    const content = await readFile(f.abs);
    // The tree may change between the size walk and the read; the archive must match what it says.
    if (content.byteLength !== f.size) {
      throw new KumoError("KUMO_E_VALIDATION", `file ${f.rel} in ${shown} changed while it was packed: try again`);
    }
    const name = Buffer.from(f.rel, "utf8");
    chunks.push(u32(name.byteLength), name, u32(content.byteLength), content);
  }
  const bytes = new Uint8Array(await gzipAsync(Buffer.concat(chunks)));
  return { bytes, files: files.length, totalBytes };
}

/** Unpacks an archive made by packSource into destDir; KUMO_E_VALIDATION (nothing written) on a bad or corrupt archive. */
export async function unpackSource(
  bytes: Uint8Array,
  destDir: string,
  options: { maxBytes?: number } = {},
): Promise<{ files: number }> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_SOURCE_BYTES;
  let raw: Buffer;
  try {
    // Bounded so a small archive cannot inflate to fill the disk or memory (a "zip bomb").
    raw = await gunzipAsync(bytes, { maxOutputLength: maxBytes + 16 * MiB });
  } catch (err) {
    if ((err as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new KumoError("KUMO_E_BODY_TOO_LARGE", `source archive inflates to more than ${formatSize(maxBytes)} of files`);
    }
    throw corrupt(`not gzip data (${err instanceof Error ? err.message : String(err)})`);
  }
  const entries = parseArchive(raw, maxBytes);

  const root = path.resolve(destDir);
  const targets = entries.map((e) => {
    const target = path.resolve(root, ...e.rel.split("/"));
    // Belt and braces after validatePath: nothing may land outside destDir.
    if (!target.startsWith(root + path.sep)) throw invalidPath(e.rel, "it leaves the destination folder");
    return target;
  });
  for (let i = 0; i < entries.length; i++) {
    const target = targets[i] as string;
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, (entries[i] as { content: Uint8Array }).content);
  }
  return { files: entries.length };
}

/** Reads and validates every entry before anything is written. */
function parseArchive(raw: Buffer, maxBytes: number): { rel: string; content: Uint8Array }[] {
  let offset = 0;
  const need = (n: number, what: string): void => {
    if (offset + n > raw.byteLength) throw corrupt(`truncated while reading ${what}`);
  };
  need(MAGIC.length, "the header");
  if (raw.toString("ascii", 0, MAGIC.length) !== MAGIC) throw corrupt(`missing the ${MAGIC} header`);
  offset = MAGIC.length;
  need(4, "the file count");
  const count = raw.readUInt32BE(offset);
  offset += 4;

  const entries: { rel: string; content: Uint8Array }[] = [];
  const seen = new Set<string>();
  let total = 0;
  for (let i = 0; i < count; i++) {
    need(4, `file ${i + 1} of ${count}`);
    const nameLength = raw.readUInt32BE(offset);
    offset += 4;
    need(nameLength, `file ${i + 1} of ${count}`);
    const nameBytes = raw.subarray(offset, offset + nameLength);
    offset += nameLength;
    let rel: string;
    try {
      rel = utf8.decode(nameBytes);
    } catch {
      throw invalidPath(nameBytes.toString("latin1"), "it is not valid UTF-8");
    }
    validatePath(rel);
    if (seen.has(rel)) throw invalidPath(rel, "it appears twice");
    seen.add(rel);
    need(4, `the size of ${rel}`);
    const size = raw.readUInt32BE(offset);
    offset += 4;
    need(size, `the content of ${rel}`);
    total += size;
    if (total > maxBytes) throw new KumoError("KUMO_E_BODY_TOO_LARGE", `source archive holds more than ${formatSize(maxBytes)} of files`);
    entries.push({ rel, content: raw.subarray(offset, offset + size) });
    offset += size;
  }
  if (offset !== raw.byteLength) throw corrupt(`${raw.byteLength - offset} unexpected bytes after the last file`);

  // A path cannot be both a file and a folder ("a" and "a/b").
  for (const rel of seen) {
    const parts = rel.split("/");
    for (let n = 1; n < parts.length; n++) {
      const prefix = parts.slice(0, n).join("/");
      if (seen.has(prefix)) throw invalidPath(rel, `"${prefix}" is also a file`);
    }
  }
  return entries;
}

/** A stored path must be relative, "/"-separated, without "..", "." or empty segments, and without NUL. */
function validatePath(rel: string): void {
  if (rel.length === 0) throw invalidPath(rel, "it is empty");
  if (rel.includes("\0")) throw invalidPath(rel.replaceAll("\0", "\\0"), "it contains a NUL byte");
  if (rel.startsWith("/") || /^[A-Za-z]:/.test(rel) || rel.startsWith("\\")) throw invalidPath(rel, "it is absolute");
  for (const segment of rel.split("/")) {
    if (segment === "..") throw invalidPath(rel, "it contains '..'");
    if (segment === "" || segment === ".") throw invalidPath(rel, "it has an empty or '.' segment");
  }
}

function invalidPath(rel: string, why: string): KumoError {
  return new KumoError("KUMO_E_VALIDATION", `source archive has a bad path ${JSON.stringify(rel)}: ${why}`, {
    details: [{ field: rel, message: why }],
  });
}

function corrupt(reason: string): KumoError {
  return new KumoError("KUMO_E_VALIDATION", `source archive is corrupt: ${reason}; pack the folder again`);
}

async function folderRoot(dir: string, shown: string): Promise<string> {
  let info;
  try {
    info = await stat(dir);
  } catch {
    throw new KumoError("KUMO_E_VALIDATION", `function folder ${shown} does not exist: pass the folder that holds your function`, {
      details: [{ field: "dir", message: `${shown} does not exist` }],
    });
  }
  if (!info.isDirectory()) {
    throw new KumoError("KUMO_E_VALIDATION", `function folder ${shown} is not a directory: pass the folder that holds your function, not a file`, {
      details: [{ field: "dir", message: `${shown} is not a directory` }],
    });
  }
  return realpath(dir);
}

/** Walks a folder; `ancestors` holds the real paths being walked, so a symlink loop ends. */
async function collect(root: string, dirAbs: string, dirRel: string, ancestors: Set<string>, out: SourceFile[]): Promise<void> {
  const inNodeModules = path.basename(dirRel) === "node_modules";
  for (const entry of await readdir(dirAbs, { withFileTypes: true })) {
    const name = entry.name;
    const rel = dirRel === "" ? name : `${dirRel}/${name}`;
    const abs = path.join(dirAbs, name);
    if (entry.isDirectory() || entry.isSymbolicLink()) {
      if (SKIPPED_DIRS.has(name) || (inNodeModules && SKIPPED_IN_NODE_MODULES.has(name))) continue;
    }
    if (entry.isFile()) {
      out.push({ rel, abs, size: (await lstat(abs)).size });
    } else if (entry.isDirectory()) {
      // Paths under the real root are real, so `abs` can stand for this folder in `ancestors`.
      await collect(root, abs, rel, new Set(ancestors).add(abs), out);
    } else if (entry.isSymbolicLink()) {
      let target: string;
      try {
        target = await realpath(abs);
      } catch {
        continue; // dangling
      }
      if (!isInside(root, target)) continue;
      const info = await stat(target);
      if (info.isFile()) {
        out.push({ rel, abs: target, size: info.size });
      } else if (info.isDirectory() && !ancestors.has(target)) {
        // npm workspaces link packages into node_modules; pack them under the link's name.
        const next = new Set(ancestors).add(target);
        await collect(root, target, rel, next, out);
      }
    }
    // Sockets, FIFOs and devices are not source.
  }
}

function isInside(root: string, target: string): boolean {
  const rel = path.relative(root, target);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

function displayPath(dir: string): string {
  if (path.isAbsolute(dir) || dir.startsWith("./") || dir.startsWith("../") || dir === "." || dir === "..") return dir;
  return `./${dir}`;
}

function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < MiB) return `${Math.round(n / 1024)} KiB`;
  const mib = n / MiB;
  return `${mib >= 10 ? Math.round(mib) : Number(mib.toFixed(1))} MiB`;
}

function u32(n: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
