// The builder: bundles that run, digests that do not depend on where the source was unpacked,
// and build errors a user can act on. Dependencies are fake packages written into temp
// node_modules folders, so no test needs the network.

import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { KumoError } from "../model/index.ts";
import { buildFunction, digestOf, packSource, unpackSource } from "./index.ts";
import type { BuildResult } from "./index.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "kumo-build-"));
  temps.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

/** A function folder in a fresh temp dir. */
async function folder(files: Record<string, string>): Promise<string> {
  const dir = await tempDir();
  await writeTree(dir, files);
  return dir;
}

/** Loads a built artifact as a module in this process and returns its default export. */
async function load(result: BuildResult): Promise<(input: unknown, ctx: unknown) => unknown> {
  const file = path.join(await tempDir(), `${result.digest.slice("sha256:".length)}.mjs`);
  await writeFile(file, result.code);
  const mod = (await import(pathToFileURL(file).href)) as { default: (input: unknown, ctx: unknown) => unknown };
  return mod.default;
}

async function buildError(options: Parameters<typeof buildFunction>[0]): Promise<KumoError> {
  const err: unknown = await buildFunction(options).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof KumoError)) throw new Error(`expected a KumoError, got ${String(err)}`);
  return err;
}

/** A folder with TypeScript, a local import, a dependency and a value import from kumo/runtime. */
const richFunction = {
  "index.ts": [
    'import type { Handler, HttpRequest } from "kumo/runtime";',
    'import { isHttpRequest } from "kumo/runtime";',
    'import { shout } from "./lib/shout.ts";',
    'import pad from "pad-left";',
    "interface Reply { text: string; http: boolean }",
    "const handler: Handler<HttpRequest, Reply> = (req) => ({ text: pad(shout(req.query.name ?? 'x'), 6), http: isHttpRequest(req) });",
    "export default handler;",
    "",
  ].join("\n"),
  "lib/shout.ts": "export const shout = (s: string): string => s.toUpperCase();\nexport const unused = (): string => 'tree-shaken away';\n",
  "package.json": '{ "name": "rich", "type": "module", "dependencies": { "pad-left": "1.0.0" } }\n',
  "node_modules/pad-left/package.json": '{ "name": "pad-left", "version": "1.0.0", "main": "index.js" }\n',
  "node_modules/pad-left/index.js": "module.exports = function pad(s, n) { return '.'.repeat(Math.max(0, n - s.length)) + s; };\n",
};

const httpRequest = { method: "GET", path: "/", query: { name: "kumo" }, rawQuery: "name=kumo", headers: {}, body: "" };

describe("buildFunction", () => {
  it("bundles TypeScript, local imports, node_modules dependencies and kumo/runtime into one module", async () => {
    const dir = await folder(richFunction);
    const result = await buildFunction({ sourceDir: dir, runtime: "isolate" });
    expect(result.entry).toBe("index.ts");
    expect(result.digest).toBe(digestOf(result.code));
    expect(result.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(result.bytes).toBe(Buffer.byteLength(result.code));
    expect(result.warnings).toEqual([]);
    // One self-contained module: no imports left, no machine paths, unused code shaken out.
    expect(result.code).not.toMatch(/^import /m);
    expect(result.code).not.toContain(dir);
    expect(result.code).not.toContain(repoRoot);
    expect(result.code).not.toContain("tree-shaken away");

    const handler = await load(result);
    expect(await handler(httpRequest, {})).toEqual({ text: "..KUMO", http: true });
  });

  it("gives the same digest for the same source, wherever it was unpacked", async () => {
    const a = await folder(richFunction);
    const b = path.join(await tempDir(), "deeper", "folder");
    await writeTree(b, richFunction);
    const first = await buildFunction({ sourceDir: a, runtime: "isolate" });
    expect((await buildFunction({ sourceDir: a, runtime: "isolate" })).digest).toBe(first.digest);
    expect((await buildFunction({ sourceDir: b, runtime: "isolate" })).digest).toBe(first.digest);

    // Through the archive, as the controller does it.
    const unpacked = await tempDir();
    await unpackSource((await packSource(a)).bytes, unpacked);
    const rebuilt = await buildFunction({ sourceDir: unpacked, runtime: "isolate" });
    expect(rebuilt.digest).toBe(first.digest);
    expect(rebuilt.code).toBe(first.code);

    await writeFile(path.join(b, "lib/shout.ts"), "export const shout = (s: string): string => s.toLowerCase();\n");
    expect((await buildFunction({ sourceDir: b, runtime: "isolate" })).digest).not.toBe(first.digest);
  });

  it("prefers a package's ES module build (mainFields module, main) for isolates", async () => {
    const dir = await folder({
      "index.js": 'import which from "dual";\nexport default () => which;\n',
      "node_modules/dual/package.json": '{ "name": "dual", "main": "cjs.js", "module": "esm.js" }\n',
      "node_modules/dual/cjs.js": "module.exports = 'cjs';\n",
      "node_modules/dual/esm.js": "export default 'esm';\n",
    });
    const handler = await load(await buildFunction({ sourceDir: dir, runtime: "isolate" }));
    expect(await handler(undefined, {})).toBe("esm");
  });

  it("reports a syntax error with file:line:column, every error in details", async () => {
    const dir = await folder({
      "index.ts": 'import { x } from "./lib.ts";\nexport default () => x;\n',
      "lib.ts": "export const x = 1;\nexport const y = (;\nexport const z = );\n",
    });
    const err = await buildError({ sourceDir: dir, runtime: "isolate" });
    expect(err.code).toBe("KUMO_E_BUILD_FAILED");
    expect(err.message).toMatch(/^lib\.ts:2:\d+: Unexpected "?;"?/);
    expect(err.details.length).toBeGreaterThanOrEqual(1);
    expect(err.details[0]?.field).toMatch(/^lib\.ts:2:\d+$/);
  });

  it("tells the user to run npm install when a dependency is missing", async () => {
    const dir = await folder({ "index.ts": 'import pad from "left-pad";\nexport default () => pad("a", 3);\n' });
    const err = await buildError({ sourceDir: dir, runtime: "isolate" });
    expect(err.code).toBe("KUMO_E_BUILD_FAILED");
    expect(err.message).toBe(
      'index.ts:1:17: Could not resolve "left-pad": run npm install in the function folder; dependencies must be in its node_modules',
    );
  });

  it("does not suggest npm install for a missing local file", async () => {
    const dir = await folder({ "index.ts": 'import { a } from "./nope.ts";\nexport default a;\n' });
    const err = await buildError({ sourceDir: dir, runtime: "isolate" });
    expect(err.message).toMatch(/^index\.ts:1:\d+: Could not resolve "\.\/nope\.ts"$/);
  });

  it("uses nothing from outside the folder: not a parent's node_modules, tsconfig.json or files", async () => {
    const parent = await tempDir();
    await writeTree(parent, {
      "node_modules/dep/package.json": '{ "name": "dep", "main": "index.js" }\n',
      "node_modules/dep/index.js": "module.exports = 'parent dep';\n",
      "tsconfig.json": '{ "compilerOptions": { "paths": { "virtual": ["./virtual.ts"] } } }\n',
      "virtual.ts": "export const v = 'parent tsconfig';\n",
      "shared.ts": "export const s = 'parent file';\n",
    });
    const fn = path.join(parent, "fn");
    await writeTree(fn, { "index.js": 'import dep from "dep";\nexport default dep;\n' });
    const dep = await buildError({ sourceDir: fn, runtime: "isolate" });
    expect(dep.message).toBe(
      'index.js:1:17: Could not resolve "dep" (found ../node_modules/dep/index.js, outside the function folder): run npm install in the function folder; dependencies must be in its node_modules',
    );

    await writeFile(path.join(fn, "index.js"), 'import { v } from "virtual";\nexport default v;\n');
    expect((await buildError({ sourceDir: fn, runtime: "isolate" })).message).toMatch(/^index\.js:1:\d+: Could not resolve "virtual"/);

    await writeFile(path.join(fn, "index.js"), 'import { s } from "../shared.ts";\nexport default s;\n');
    expect((await buildError({ sourceDir: fn, runtime: "process" })).message).toMatch(
      /^index\.js:1:\d+: "\.\.\/shared\.ts" is outside the function folder \(\.\.\/shared\.ts\): only the folder is deployed/,
    );
  });

  it("honours the folder's own tsconfig.json", async () => {
    const dir = await folder({
      "tsconfig.json": '{ "compilerOptions": { "paths": { "@lib/*": ["./lib/*"] } } }\n',
      "lib/name.ts": "export const name = 'mapped';\n",
      "index.ts": 'import { name } from "@lib/name.ts";\nexport default () => name;\n',
    });
    expect(await (await load(await buildFunction({ sourceDir: dir, runtime: "isolate" })))(undefined, {})).toBe("mapped");
  });

  it("fails when the entry has no default export", async () => {
    const dir = await folder({ "index.ts": "export const handler = () => 1;\n" });
    const err = await buildError({ sourceDir: dir, runtime: "isolate" });
    expect(err.code).toBe("KUMO_E_BUILD_FAILED");
    expect(err.message).toBe("index.ts has no default export: add `export default handler`");
  });

  it.each(["node:fs", "fs", "fs/promises"])("rejects an import of %s in the isolate runtime, naming file:line and the fix", async (spec) => {
    const dir = await folder({
      "index.ts": `// reads a file\nimport { readFileSync } from "${spec}";\nexport default () => typeof readFileSync;\n`,
    });
    const err = await buildError({ sourceDir: dir, runtime: "isolate" });
    expect(err.code).toBe("KUMO_E_BUILD_FAILED");
    const name = spec.startsWith("node:") ? spec : `node:${spec}`;
    expect(err.message).toMatch(new RegExp(`^index\\.ts:2:\\d+: runtime isolate has no ${name}; use --runtime process`));
  });

  it("rejects a dependency that needs a Node builtin in the isolate runtime, naming the dependency's file", async () => {
    const dir = await folder({
      "index.js": 'import dep from "uses-path";\nexport default dep;\n',
      "node_modules/uses-path/package.json": '{ "name": "uses-path", "main": "index.js" }\n',
      "node_modules/uses-path/index.js": 'const path = require("path");\nmodule.exports = () => path.join("a", "b");\n',
    });
    const err = await buildError({ sourceDir: dir, runtime: "isolate" });
    expect(err.message).toMatch(/^node_modules\/uses-path\/index\.js:1:\d+: runtime isolate has no node:path/);
  });

  it("uses a same-named browser polyfill from node_modules in the isolate runtime", async () => {
    const dir = await folder({
      "index.js": 'import { EventEmitter } from "events";\nexport default () => new EventEmitter().kind;\n',
      "node_modules/events/package.json": '{ "name": "events", "main": "events.js" }\n',
      "node_modules/events/events.js": "exports.EventEmitter = class { kind = 'polyfill'; };\n",
    });
    const handler = await load(await buildFunction({ sourceDir: dir, runtime: "isolate" }));
    expect(await handler(undefined, {})).toBe("polyfill");
  });

  it("keeps Node builtins external in the process runtime, from ES modules and CommonJS dependencies", async () => {
    const dir = await folder({
      "index.ts": [
        'import { readFileSync } from "node:fs";',
        'import join from "uses-path";',
        "export default () => ({ self: readFileSync(new URL(import.meta.url), 'utf8').length > 0, joined: join() });",
        "",
      ].join("\n"),
      "node_modules/uses-path/package.json": '{ "name": "uses-path", "main": "index.js" }\n',
      "node_modules/uses-path/index.js": 'const path = require("path");\nmodule.exports = () => path.posix.join("a", "b");\n',
    });
    const result = await buildFunction({ sourceDir: dir, runtime: "process" });
    const handler = await load(result);
    expect(await handler(undefined, {})).toEqual({ self: true, joined: "a/b" });
  });

  it("finds the entry: --entry, then index.ts/.mts/.js/.mjs, then package.json main", async () => {
    const both = await folder({ "index.js": "export default () => 'js';\n", "index.mts": "export default (): string => 'mts';\n" });
    expect((await buildFunction({ sourceDir: both, runtime: "isolate" })).entry).toBe("index.mts");
    const picked = await buildFunction({ sourceDir: both, entry: "./index.js", runtime: "isolate" });
    expect(picked.entry).toBe("index.js");
    expect(await (await load(picked))(undefined, {})).toBe("js");

    const main = await folder({ "package.json": '{ "main": "src/handler.js" }\n', "src/handler.js": "export default () => 'main';\n" });
    expect((await buildFunction({ sourceDir: main, runtime: "isolate" })).entry).toBe("src/handler.js");
  });

  it("fails with the fix when there is no entry, or --entry does not exist or leaves the folder", async () => {
    const empty = await folder({ "README.md": "nothing to run\n" });
    const none = await buildError({ sourceDir: empty, runtime: "isolate" });
    expect(none.code).toBe("KUMO_E_BUILD_FAILED");
    expect(none.message).toBe(`no entry file in ${empty}: add index.ts or pass --entry`);

    const missing = await buildError({ sourceDir: empty, entry: "main.ts", runtime: "isolate" });
    expect(missing.code).toBe("KUMO_E_BUILD_FAILED");
    expect(missing.message).toContain("entry file main.ts not found");

    const outside = await buildError({ sourceDir: empty, entry: "../elsewhere.ts", runtime: "isolate" });
    expect(outside.message).toContain("outside the function folder");
  });

  it("builds examples/hello-http, which greets by name", async () => {
    const result = await buildFunction({ sourceDir: path.join(repoRoot, "examples/hello-http"), runtime: "isolate" });
    expect(result.entry).toBe("index.ts");
    const lines: unknown[][] = [];
    const ctx = { log: { info: (...args: unknown[]) => lines.push(args) } };
    const handler = await load(result);
    expect(await handler({ ...httpRequest, query: { name: "kumo" } }, ctx)).toEqual({ message: "hello, kumo" });
    expect(await handler({ ...httpRequest, query: {} }, ctx)).toEqual({ message: "hello, world" });
    expect(lines).toHaveLength(2);
  });

  it("builds examples/with-deps once its dependency is installed", async () => {
    const dir = await tempDir();
    await cp(path.join(repoRoot, "examples/with-deps"), dir, { recursive: true, filter: (src) => !src.includes("node_modules") });
    const before = await buildError({ sourceDir: dir, runtime: "isolate" });
    expect(before.message).toContain('Could not resolve "ms": run npm install in the function folder');

    // A stand-in for `npm install`: a tiny ms with the same API for the inputs used here.
    await writeTree(dir, {
      "node_modules/ms/package.json": '{ "name": "ms", "version": "2.1.3", "main": "index.js" }\n',
      "node_modules/ms/index.js":
        "module.exports = function (v, o) { if (typeof v === 'string') { var m = /^(\\d+)m$/.exec(v); return m ? m[1] * 60000 : NaN; } return o && o.long ? Math.round(v / 3600000) + ' hours' : v + 'ms'; };\n",
    });
    const handler = await load(await buildFunction({ sourceDir: dir, runtime: "isolate" }));
    const ctx = { log: { info: () => undefined } };
    expect(await handler({ ...httpRequest, query: { in: "90m" } }, ctx)).toEqual({ input: "90m", ms: 5400000, human: "2 hours" });
    expect(await handler({ ...httpRequest, query: { in: "soon" } }, ctx)).toMatchObject({ status: 400 });
  });
});
