// Source archives: round trip, determinism, what is skipped, the size limit, and rejection of
// hostile or damaged archives.

import { mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { KumoError } from "../model/index.ts";
import { packSource, unpackSource } from "./index.ts";

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "kumo-archive-"));
  temps.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** Writes files (relative path → content) under dir, in the given order. */
async function writeTree(dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

/** Every file under dir, as relative path → content. */
async function readTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const abs = path.join(entry.parentPath, entry.name);
    out[path.relative(dir, abs).split(path.sep).join("/")] = await readFile(abs, "utf8");
  }
  return out;
}

/** Encodes entries in the KUMOSRC1 format by hand, so tests can make archives packSource never would. */
function craftArchive(entries: { path: string; content: string }[], options: { gzip?: boolean } = {}): Uint8Array {
  const parts: Buffer[] = [Buffer.from("KUMOSRC1", "ascii"), u32(entries.length)];
  for (const e of entries) {
    const name = Buffer.from(e.path, "utf8");
    const content = Buffer.from(e.content, "utf8");
    parts.push(u32(name.byteLength), name, u32(content.byteLength), content);
  }
  const raw = Buffer.concat(parts);
  return options.gzip === false ? raw : gzipSync(raw);
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

async function rejection(promise: Promise<unknown>): Promise<KumoError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof KumoError)) throw new Error(`expected a KumoError, got ${String(err)}`);
  return err;
}

const functionFolder = {
  "index.ts": 'import { greet } from "./lib/greet.ts";\nexport default () => greet("x");\n',
  "lib/greet.ts": "export const greet = (n: string) => `hi ${n}`;\n",
  "package.json": '{ "name": "fn", "dependencies": { "dep": "1.0.0" } }\n',
  "node_modules/dep/package.json": '{ "name": "dep", "main": "index.js" }\n',
  "node_modules/dep/index.js": "module.exports = 1;\n",
  "data/ünïcode name.txt": "text\n",
};

describe("packSource / unpackSource", () => {
  it("round-trips a folder, node_modules included", async () => {
    const src = await tempDir();
    await writeTree(src, functionFolder);
    const packed = await packSource(src);
    expect(packed.files).toBe(6);
    expect(packed.totalBytes).toBe(Object.values(functionFolder).reduce((n, c) => n + Buffer.byteLength(c), 0));

    const dest = await tempDir();
    expect(await unpackSource(packed.bytes, dest)).toEqual({ files: 6 });
    expect(await readTree(dest)).toEqual(functionFolder);
  });

  it("packs the same folder to the same bytes, whatever the file order or times", async () => {
    const a = await tempDir();
    const b = await tempDir();
    await writeTree(a, functionFolder);
    await writeTree(b, Object.fromEntries(Object.entries(functionFolder).reverse()));
    await utimes(path.join(b, "index.ts"), new Date(2001, 1, 1), new Date(2001, 1, 1));

    const first = await packSource(a);
    expect(Buffer.from((await packSource(a)).bytes).equals(Buffer.from(first.bytes))).toBe(true);
    expect(Buffer.from((await packSource(b)).bytes).equals(Buffer.from(first.bytes))).toBe(true);

    await writeFile(path.join(b, "index.ts"), "export default () => 2;\n");
    expect(Buffer.from((await packSource(b)).bytes).equals(Buffer.from(first.bytes))).toBe(false);
  });

  it("skips .git, .kumo, node_modules/.cache, node_modules/.bin and symlinks leaving the folder", async () => {
    const outside = await tempDir();
    await writeFile(path.join(outside, "secret.txt"), "do not pack");
    const src = await tempDir();
    await writeTree(src, {
      "index.js": "export default () => 1;\n",
      ".git/HEAD": "ref: refs/heads/main\n",
      ".kumo/state.json": "{}\n",
      "node_modules/.cache/esbuild/x": "cache\n",
      "node_modules/.bin/tool": "#!/bin/sh\n",
      "node_modules/dep/index.js": "module.exports = 1;\n",
      "node_modules/dep/node_modules/.bin/inner": "#!/bin/sh\n",
    });
    await symlink(path.join(outside, "secret.txt"), path.join(src, "leak.txt"));
    await symlink(outside, path.join(src, "leakdir"));
    await symlink("index.js", path.join(src, "alias.js"));
    await symlink(src, path.join(src, "loop"));

    const dest = await tempDir();
    await unpackSource((await packSource(src)).bytes, dest);
    expect(Object.keys(await readTree(dest)).sort()).toEqual(["alias.js", "index.js", "node_modules/dep/index.js"]);
    expect(await readFile(path.join(dest, "alias.js"), "utf8")).toBe("export default () => 1;\n");
  });

  it("rejects a folder over the size limit, naming its size and the fix", async () => {
    const src = await tempDir();
    await writeTree(src, { "index.js": "export default 1;\n", "big.bin": new Uint8Array(3 * 1024 * 1024) });
    const err = await rejection(packSource(src, { maxBytes: 2 * 1024 * 1024 }));
    expect(err.code).toBe("KUMO_E_BODY_TOO_LARGE");
    expect(err.message).toContain(`function folder ${src} is 3 MiB, over the 2 MiB limit: remove large files`);
    expect(err.message).toContain("big.bin (3 MiB)");
  });

  it("rejects a missing folder and a file with KUMO_E_VALIDATION", async () => {
    const dir = await tempDir();
    const missing = await rejection(packSource(path.join(dir, "nope")));
    expect(missing.code).toBe("KUMO_E_VALIDATION");
    expect(missing.message).toMatch(/nope does not exist/);

    await writeFile(path.join(dir, "file.ts"), "x");
    const notDir = await rejection(packSource(path.join(dir, "file.ts")));
    expect(notDir.code).toBe("KUMO_E_VALIDATION");
    expect(notDir.message).toMatch(/file\.ts is not a directory/);
  });

  it.each([
    ["../evil.js", "contains '..'"],
    ["lib/../../evil.js", "contains '..'"],
    ["/etc/cron.d/evil", "absolute"],
    ["C:/evil.js", "absolute"],
    ["evil\0.js", "NUL"],
    ["lib//x.js", "empty"],
    ["", "empty"],
  ])("rejects the path %j in an archive and writes nothing", async (bad, why) => {
    const parent = await tempDir();
    const dest = path.join(parent, "dest");
    const archive = craftArchive([
      { path: "index.js", content: "export default 1;" },
      { path: bad, content: "pwned" },
    ]);
    const err = await rejection(unpackSource(archive, dest));
    expect(err.code).toBe("KUMO_E_VALIDATION");
    expect(err.message).toContain("source archive has a bad path");
    expect(err.message).toContain(why);
    expect(await readdir(parent)).toEqual([]);
  });

  it("rejects duplicate paths and a path that is both a file and a folder", async () => {
    const dest = await tempDir();
    const dup = await rejection(unpackSource(craftArchive([{ path: "a.js", content: "1" }, { path: "a.js", content: "2" }]), dest));
    expect(dup.message).toContain("appears twice");
    const clash = await rejection(unpackSource(craftArchive([{ path: "a", content: "1" }, { path: "a/b", content: "2" }]), dest));
    expect(clash.message).toContain('"a" is also a file');
  });

  it("rejects corrupt and truncated archives", async () => {
    const src = await tempDir();
    await writeTree(src, functionFolder);
    const good = (await packSource(src)).bytes;
    const dest = await tempDir();

    const cases: Uint8Array[] = [
      new TextEncoder().encode("not an archive at all"),
      good.subarray(0, Math.floor(good.byteLength / 2)),
      gzipSync(Buffer.from("KUMOSRC2 wrong magic")),
      gzipSync(Buffer.from(craftArchive([{ path: "index.js", content: "export default 1;" }], { gzip: false }).subarray(0, 20))),
      gzipSync(Buffer.concat([craftArchive([{ path: "index.js", content: "x" }], { gzip: false }), Buffer.from("junk")])),
    ];
    for (const bytes of cases) {
      const err = await rejection(unpackSource(bytes, dest));
      expect(err.code).toBe("KUMO_E_VALIDATION");
      expect(err.message).toMatch(/^source archive is corrupt: /);
    }
    expect(await readdir(dest)).toEqual([]);
  });

  it("refuses an archive that inflates past the limit", async () => {
    const archive = craftArchive([{ path: "big.txt", content: "a".repeat(2 * 1024 * 1024) }]);
    const err = await rejection(unpackSource(archive, await tempDir(), { maxBytes: 1024 * 1024 }));
    expect(err.code).toBe("KUMO_E_BODY_TOO_LARGE");
  });
});
