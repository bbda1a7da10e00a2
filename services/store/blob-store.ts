// Content-addressed blobs on disk (source archives, built bundles) under
// `<dataDir>/blobs/sha256/<hex>`. A blob is written to a temporary file, synced and renamed into
// place, so a reader never sees a partial blob and a crash leaves none behind.

import { createHash, randomUUID } from "node:crypto";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { KumoError } from "../model/index.ts";
import type { BlobStore } from "./store.ts";

const DIGEST = /^sha256:([0-9a-f]{64})$/;

/** The sha256:<hex> digest of some bytes. */
export function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** True when `digest` has the form sha256:<64 lowercase hex digits>. */
export function isDigest(digest: string): boolean {
  return DIGEST.test(digest);
}

/** BlobStore on the local file system. */
export class FileBlobStore implements BlobStore {
  private readonly root: string;
  private readonly tmp: string;

  /** Blobs live under `<dataDir>/blobs`; directories are created on first put. */
  constructor(dataDir: string) {
    this.root = join(dataDir, "blobs", "sha256");
    // On the same file system as the blobs, so rename is atomic.
    this.tmp = join(dataDir, "blobs", "tmp");
  }

  async put(bytes: Uint8Array): Promise<string> {
    const digest = digestOf(bytes);
    const target = this.pathOf(digest);
    if (await exists(target)) return digest;
    await mkdir(this.root, { recursive: true });
    await mkdir(this.tmp, { recursive: true });
    const temp = join(this.tmp, `${randomUUID()}.partial`);
    try {
      const file = await open(temp, "wx");
      try {
        await file.writeFile(bytes);
        await file.sync();
      } finally {
        await file.close();
      }
      // Two concurrent puts of the same bytes both rename; the second replaces identical content.
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    return digest;
  }

  async get(digest: string): Promise<Uint8Array | undefined> {
    const path = this.pathOf(digest);
    try {
      return new Uint8Array(await readFile(path));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async has(digest: string): Promise<boolean> {
    return exists(this.pathOf(digest));
  }

  pathOf(digest: string): string {
    const hex = DIGEST.exec(digest)?.[1];
    if (hex === undefined) {
      throw new KumoError("KUMO_E_VALIDATION", `digest "${digest}" is not of the form sha256:<64 lowercase hex digits>: pass the digest returned when the blob was stored`, {
        details: [{ field: "digest", message: "expected sha256:<64 lowercase hex digits>" }],
      });
    }
    return join(this.root, hex);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "ENOENT";
}
