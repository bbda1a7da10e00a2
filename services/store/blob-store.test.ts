// The file BlobStore: content addressing, idempotent atomic writes, and digest validation.

import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KumoError } from "../model/index.ts";
import { FileBlobStore, digestOf, isDigest } from "./index.ts";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe("FileBlobStore", () => {
  let dir: string;
  let blobs: FileBlobStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kumo-blobs-"));
    blobs = new FileBlobStore(dir);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("stores bytes under their sha256 digest and reads them back", async () => {
    const content = bytes("export default () => 'hi';");
    const digest = await blobs.put(content);
    expect(digest).toBe(`sha256:${createHash("sha256").update(content).digest("hex")}`);
    expect(await blobs.has(digest)).toBe(true);
    expect(await blobs.get(digest)).toEqual(content);
    expect(blobs.pathOf(digest)).toBe(join(dir, "blobs", "sha256", digest.slice("sha256:".length)));
    expect(new Uint8Array(await readFile(blobs.pathOf(digest)))).toEqual(content);
  });

  it("stores the same bytes once and leaves no temporary files", async () => {
    const [a, b] = await Promise.all([blobs.put(bytes("same")), blobs.put(bytes("same"))]);
    const c = await blobs.put(bytes("same"));
    expect(new Set([a, b, c]).size).toBe(1);
    expect(await readdir(join(dir, "blobs", "sha256"))).toHaveLength(1);
    expect(await readdir(join(dir, "blobs", "tmp"))).toEqual([]);
  });

  it("stores an empty blob", async () => {
    const digest = await blobs.put(new Uint8Array());
    expect(await blobs.get(digest)).toEqual(new Uint8Array());
  });

  it("answers undefined and false for a digest it does not hold", async () => {
    const missing = digestOf(bytes("never stored"));
    expect(await blobs.get(missing)).toBeUndefined();
    expect(await blobs.has(missing)).toBe(false);
  });

  it("rejects malformed digests with KUMO_E_VALIDATION", async () => {
    const bad = ["", "sha256:", "sha256:xyz", `sha512:${"a".repeat(64)}`, `sha256:${"A".repeat(64)}`, `sha256:${"a".repeat(63)}`, `sha256:../../${"a".repeat(58)}`];
    for (const digest of bad) {
      expect(isDigest(digest)).toBe(false);
      expect(() => blobs.pathOf(digest)).toThrow(KumoError);
      await expect(blobs.get(digest)).rejects.toMatchObject({ code: "KUMO_E_VALIDATION" });
      await expect(blobs.has(digest)).rejects.toMatchObject({ code: "KUMO_E_VALIDATION" });
    }
    expect(isDigest(digestOf(bytes("x")))).toBe(true);
  });
});
