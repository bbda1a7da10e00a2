// The builder: bundles an unpacked function folder with esbuild into one ES module whose default
// export is the handler, named by the sha256 of its code. Paths in the output are relative to the
// folder, so the same source gives the same digest wherever it was unpacked.

import { builtinModules } from "node:module";
import { readFile, realpath, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { KumoError } from "../model/index.ts";
import type { ErrorDetail } from "../model/index.ts";
import { digestOf } from "./digest.ts";

/** Where the bundle runs: a bare V8 isolate (web globals only) or a Node process. */
export type BuildRuntime = "isolate" | "process";

/** What to build. */
export interface BuildOptions {
  /** The function folder (npm dependencies are taken from its node_modules). */
  sourceDir: string;
  /** Entry file relative to sourceDir; default: index.ts, index.mts, index.js, index.mjs, then package.json "main". */
  entry?: string;
  runtime: BuildRuntime;
}

/** A built artifact. */
export interface BuildResult {
  /** One ES module; its default export is the handler. */
  code: string;
  /** sha256:<hex> of code (UTF-8). */
  digest: string;
  /** The entry file used, relative to sourceDir. */
  entry: string;
  /** Size of code in bytes (UTF-8). */
  bytes: number;
  /** esbuild warnings as "file:line:column: text". */
  warnings: string[];
  durationMs: number;
}

/** Entry files tried in order when none is given. */
const DEFAULT_ENTRIES = ["index.ts", "index.mts", "index.js", "index.mjs"];

/** The author SDK that "kumo/runtime" means. */
const SDK_PATH = fileURLToPath(new URL("../../runtime/sdk/index.ts", import.meta.url));

const OUTFILE = "function.mjs";

/**
 * Gives a process bundle a real `require` for the builtins its CommonJS dependencies load
 * (esbuild's ESM output otherwise throws "Dynamic require of ... is not supported"); a bundle
 * loaded from a data: URL has no file URL to anchor it, and builtins resolve from anywhere.
 */
const PROCESS_REQUIRE_BANNER = [
  'import { createRequire as __kumoCreateRequire } from "node:module";',
  'const require = __kumoCreateRequire(import.meta.url.startsWith("file:") ? import.meta.url : process.cwd() + "/");',
].join("\n");

const NODE_BUILTINS = new Set(builtinModules.filter((m) => !m.startsWith("_")));

/** Builds a function folder into one ES module; KUMO_E_BUILD_FAILED with file:line:column on any error. */
export async function buildFunction(options: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  const sourceDir = await sourceRoot(options.sourceDir);
  const entry = await findEntry(sourceDir, options.sourceDir, options.entry);
  const isolate = options.runtime === "isolate";

  let result: esbuild.BuildResult<{ write: false; metafile: true }>;
  try {
    result = await esbuild.build({
      absWorkingDir: sourceDir,
      entryPoints: [entry],
      outfile: OUTFILE,
      write: false,
      metafile: true,
      bundle: true,
      format: "esm",
      target: "es2023",
      minify: false,
      treeShaking: true,
      logLevel: "silent",
      charset: "utf8",
      ...(isolate
        ? {
            platform: "neutral",
            mainFields: ["module", "main"],
            conditions: ["worker", "browser", "import", "default"],
            // Libraries branch on NODE_ENV; an isolate has no `process` to read it from.
            define: { "process.env.NODE_ENV": '"production"' },
          }
        : {
            platform: "node",
            // CommonJS dependencies may require() Node builtins, and an ES module has no require.
            banner: { js: PROCESS_REQUIRE_BANNER },
          }),
      // Only the folder's own tsconfig.json counts; a parent's would make the build depend on
      // where the folder sits.
      ...((await isFile(path.join(sourceDir, "tsconfig.json"))) ? { tsconfig: "tsconfig.json" } : { tsconfigRaw: {} }),
      plugins: [functionFolderPlugin(sourceDir, options.runtime)],
    });
  } catch (err) {
    if (isBuildFailure(err)) throw buildFailed(err.errors);
    throw err;
  }
  if (result.errors.length > 0) throw buildFailed(result.errors);

  const output = result.outputFiles[0];
  if (output === undefined) throw new KumoError("KUMO_E_INTERNAL", "internal error: esbuild produced no output");
  const meta = Object.entries(result.metafile.outputs).find(([file]) => file.endsWith(OUTFILE))?.[1];
  if (meta === undefined || !meta.exports.includes("default")) {
    throw new KumoError("KUMO_E_BUILD_FAILED", `${entry} has no default export: add \`export default handler\``, {
      details: [{ field: entry, message: "no default export" }],
    });
  }

  const code = output.text;
  return {
    code,
    digest: digestOf(code),
    entry,
    bytes: Buffer.byteLength(code, "utf8"),
    warnings: result.warnings.map(formatMessage),
    durationMs: Math.round((performance.now() - started) * 10) / 10,
  };
}

/** Marks a resolve this plugin asked for itself, so it does not handle it again. */
const INNER = { kumoInner: true };

/**
 * Resolution inside a function folder: "kumo/runtime" is the SDK (under a virtual name, so the
 * output holds no machine path); Node builtins are external for a process and a build error
 * for an isolate; anything else must resolve inside the folder, because only the folder is
 * deployed (esbuild would otherwise find packages in node_modules of parent folders).
 */
function functionFolderPlugin(root: string, runtime: BuildRuntime): esbuild.Plugin {
  return {
    name: "kumo-function-folder",
    setup(build) {
      // "kumo/runtime" is the SDK's index; "kumo/runtime/<file>" its other modules.
      build.onLoad({ filter: /.*/, namespace: "kumo" }, async (args) => {
        const file = args.path === "kumo/runtime" ? SDK_PATH : path.join(path.dirname(SDK_PATH), args.path.slice("kumo/runtime/".length));
        return { contents: await readFile(file, "utf8"), loader: "ts", resolveDir: path.dirname(SDK_PATH) };
      });
      build.onResolve({ filter: /.*/ }, async (args) => {
        if ((args.pluginData as { kumoInner?: boolean } | undefined)?.kumoInner === true) return undefined;
        if (args.path === "kumo/runtime") return { path: "kumo/runtime", namespace: "kumo" };
        if (args.namespace === "kumo" && args.path.startsWith("./") && !args.path.includes("..")) {
          return { path: `kumo/runtime/${args.path.slice(2)}`, namespace: "kumo" };
        }
        const builtin = builtinName(args.path);
        if (builtin !== undefined && runtime === "process") return { path: args.path, external: true };
        const isolateHasNo = { errors: [{ text: `runtime isolate has no ${builtin ?? ""}; use --runtime process, or a library that uses web APIs (fetch, crypto.subtle, TextEncoder)` }] };
        if (builtin !== undefined && args.path.startsWith("node:")) return isolateHasNo;

        const resolved = await build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: INNER });
        if (resolved.errors.length > 0 || resolved.external || resolved.namespace !== "file") {
          // A same-named browser polyfill (events, buffer, ...) would have resolved above.
          if (builtin !== undefined) return isolateHasNo;
          return undefined; // esbuild resolves again and reports its own error
        }
        if (!isInside(root, resolved.path)) {
          if (builtin !== undefined) return isolateHasNo;
          const where = path.relative(root, resolved.path).split(path.sep).join("/");
          const text = isBare(args.path)
            ? `Could not resolve "${args.path}" (found ${where}, outside the function folder)`
            : `"${args.path}" is outside the function folder (${where}): only the folder is deployed; move the file into it`;
          return { errors: [{ text }] };
        }
        return { path: resolved.path, namespace: resolved.namespace, suffix: resolved.suffix, sideEffects: resolved.sideEffects, pluginData: resolved.pluginData as unknown };
      });
    },
  };
}

/** "node:fs" for "fs", "node:fs" or "fs/promises"-style builtins; undefined for anything else. */
function builtinName(specifier: string): string | undefined {
  const bare = specifier.startsWith("node:") ? specifier.slice("node:".length) : specifier;
  if (NODE_BUILTINS.has(bare) || NODE_BUILTINS.has(specifier)) return `node:${bare}`;
  return undefined;
}

function isBare(specifier: string): boolean {
  return !specifier.startsWith(".") && !path.isAbsolute(specifier);
}

function isInside(root: string, file: string): boolean {
  const rel = path.relative(root, file);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

function isBuildFailure(err: unknown): err is esbuild.BuildFailure {
  return err instanceof Error && Array.isArray((err as { errors?: unknown }).errors);
}

/** The first error (with its location) is the message; every error is a detail. */
function buildFailed(messages: readonly esbuild.Message[]): KumoError {
  const details: ErrorDetail[] = messages.map((m) => {
    const field = locationOf(m);
    const text = withFix(m);
    return field === undefined ? { message: text } : { field, message: text };
  });
  const first = messages[0];
  const message = first === undefined ? "build failed" : formatMessage(first);
  const more = messages.length > 1 ? ` (and ${messages.length - 1} more error${messages.length > 2 ? "s" : ""})` : "";
  return new KumoError("KUMO_E_BUILD_FAILED", `${message}${more}`, { details });
}

/** "file:line:column: text" with a 1-based column, as editors count. */
function formatMessage(m: esbuild.Message): string {
  const where = locationOf(m);
  return where === undefined ? withFix(m) : `${where}: ${withFix(m)}`;
}

function locationOf(m: esbuild.Message): string | undefined {
  const loc = m.location;
  if (loc === null) return undefined;
  return `${loc.file}:${loc.line}:${loc.column + 1}`;
}

/** Adds the fix to errors a user can fix in a known way. */
function withFix(m: esbuild.Message): string {
  const unresolved = /^Could not resolve "([^"]+)"/.exec(m.text);
  const specifier = unresolved?.[1];
  if (specifier !== undefined && isBare(specifier)) {
    return `${m.text}: run npm install in the function folder; dependencies must be in its node_modules`;
  }
  return m.text;
}

async function sourceRoot(dir: string): Promise<string> {
  try {
    if ((await stat(dir)).isDirectory()) return await realpath(dir);
  } catch {
    // reported below
  }
  throw new KumoError("KUMO_E_VALIDATION", `function folder ${dir} does not exist or is not a directory`, {
    details: [{ field: "sourceDir", message: `${dir} is not a directory` }],
  });
}

/** The entry file, relative to the folder ("/"-separated). */
async function findEntry(root: string, shown: string, requested: string | undefined): Promise<string> {
  if (requested !== undefined) {
    const rel = relativeInside(root, requested);
    if (rel === undefined) {
      throw new KumoError("KUMO_E_BUILD_FAILED", `entry ${requested} is outside the function folder: pass a path relative to it`, {
        details: [{ field: "entry", message: "outside the function folder" }],
      });
    }
    if (!(await isFile(path.join(root, rel)))) {
      throw new KumoError("KUMO_E_BUILD_FAILED", `entry file ${rel} not found in ${shown}: check --entry`, {
        details: [{ field: "entry", message: `${rel} not found` }],
      });
    }
    return rel;
  }
  for (const name of DEFAULT_ENTRIES) {
    if (await isFile(path.join(root, name))) return name;
  }
  const main = await packageMain(root);
  if (main !== undefined) {
    const rel = relativeInside(root, main);
    if (rel !== undefined && (await isFile(path.join(root, rel)))) return rel;
  }
  throw new KumoError("KUMO_E_BUILD_FAILED", `no entry file in ${shown}: add index.ts or pass --entry`, {
    details: [{ field: "entry", message: `none of ${DEFAULT_ENTRIES.join(", ")} or package.json "main" exists` }],
  });
}

async function packageMain(root: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(root, "package.json"), "utf8");
  } catch {
    return undefined;
  }
  let pkg: unknown;
  try {
    pkg = JSON.parse(text);
  } catch (err) {
    throw new KumoError("KUMO_E_BUILD_FAILED", `package.json is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, {
      details: [{ field: "package.json", message: "not valid JSON" }],
    });
  }
  const main = typeof pkg === "object" && pkg !== null ? (pkg as { main?: unknown }).main : undefined;
  return typeof main === "string" && main !== "" ? main : undefined;
}

/** `p` relative to root, "/"-separated, or undefined when it points outside. */
function relativeInside(root: string, p: string): string | undefined {
  const rel = path.relative(root, path.resolve(root, p));
  if (rel === "" || rel === ".." || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) return undefined;
  return rel.split(path.sep).join("/");
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}
