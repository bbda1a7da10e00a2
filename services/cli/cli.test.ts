import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KumoApiError, KumoConnectionError } from "../api/index.ts";
import type { KumoFunction, Revision } from "../model/index.ts";
import { KumoError } from "../model/index.ts";
import { globalFlags, parseDuration, parseFlags, parsePairs, UsageError } from "./args.ts";
import { splitCommand } from "./cli.ts";
import { chooseName, deployCommand, mergeSpec, sanitizeName, specFlags } from "./deploy.ts";
import { describeText, scaleText, summarize } from "./describe.ts";
import { DIGEST, fn, kumo, NOW, rec, stubServer } from "./cli.fixture.ts";
import { invokeRequest } from "./invoke.ts";
import { functionTable } from "./list.ts";
import { formatRecord } from "./logs.ts";
import { formatAge, formatBytes, renderError, shortDigest, table } from "./output.ts";

describe("argument parsing", () => {
  it.each([
    ["30s", 30_000],
    ["500ms", 500],
    ["2m", 120_000],
    ["1.5s", 1500],
    ["250", 250],
    ["1h", 3_600_000],
  ])("reads the duration %s as %d ms", (raw, ms) => {
    expect(parseDuration(raw, "timeout")).toBe(ms);
  });

  it.each(["soon", "30x", "-5s", "", "5 m"])("rejects the duration %j naming the flag and the forms", (raw) => {
    expect(() => parseDuration(raw, "timeout", "deploy")).toThrow(UsageError);
    expect(() => parseDuration(raw, "timeout", "deploy")).toThrow(`--timeout "${raw}" is not a duration: use milliseconds (500) or a number with a unit (500ms, 30s, 2m, 1h)`);
  });

  it("collects a repeatable --env into an object, splitting at the first '='", () => {
    const { values } = parseFlags(["--env", "A=1", "--env", "B=x=y", "--env=C="], { ...globalFlags, ...deployCommand.flags }, "deploy");
    expect(parsePairs(values.env as string[], "env")).toEqual({ A: "1", B: "x=y", C: "" });
    expect(() => parsePairs(["NOPE"], "env", "deploy")).toThrow('--env "NOPE" is not NAME=value');
  });

  it("reads every deploy flag, including --no-wait", () => {
    const { values, positionals } = parseFlags(
      ["./fn", "--runtime", "process", "--timeout", "2m", "--memory", "256", "--concurrency", "4", "--min-scale", "1", "--max-scale", "3", "--entry", "src/main.ts", "--no-wait", "-n", "prod"],
      { ...globalFlags, ...deployCommand.flags },
      "deploy",
    );
    expect(positionals).toEqual(["./fn"]);
    expect(values.wait).toBe(false);
    expect(values.namespace).toBe("prod");
    expect(specFlags(values)).toEqual({ runtime: "process", timeoutMs: 120_000, memoryMb: 256, concurrency: 4, minScale: 1, maxScale: 3, entry: "src/main.ts" });
  });

  it("finds the command word after global flags that take values", () => {
    expect(splitCommand(["-n", "prod", "--server", "http://x:1", "list", "-o", "json"])).toEqual({ name: "list", rest: ["-n", "prod", "--server", "http://x:1", "-o", "json"] });
    expect(splitCommand(["--help"])).toEqual({ name: undefined, rest: ["--help"] });
  });

  it("keeps current spec values on redeploy and applies only the flags given", () => {
    const current = fn("hello").spec;
    const spec = mergeSpec(current, `sha256:${"cd".repeat(32)}`, { timeoutMs: 5000, maxScale: 2 });
    expect(spec).toEqual({ ...current, source: { digest: `sha256:${"cd".repeat(32)}` }, limits: { timeoutMs: 5000, memoryMb: 128 }, scale: { ...current.scale, max: 2 } });
    expect(mergeSpec(undefined, DIGEST, { env: { B: "2" } })).toEqual({ source: { digest: DIGEST }, env: { B: "2" } });
  });

  it("makes function names DNS-1123 labels and says so when it changed one", async () => {
    expect(sanitizeName("My_Fn")).toBe("my-fn");
    expect(sanitizeName("@acme/VM Inventory!")).toBe("vm-inventory");
    expect(sanitizeName("___")).toBe("");
    const dir = await mkdtemp(join(tmpdir(), "kumo-cli-"));
    try {
      const folder = join(dir, "Hello_World");
      await mkdir(folder);
      expect(await chooseName(folder, undefined)).toEqual({
        name: "hello-world",
        note: 'Using function name "hello-world" (from the folder "Hello_World"; names are DNS-1123 labels, pass --name to choose another)',
      });
      await writeFile(join(folder, "package.json"), JSON.stringify({ name: "@acme/report" }));
      expect((await chooseName(folder, undefined)).name).toBe("report");
      expect(await chooseName(folder, "given")).toEqual({ name: "given" });
      await expect(chooseName(folder, "Bad_Name")).rejects.toThrow('--name: function name "Bad_Name" is not a DNS-1123 label');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("builds an invoke request from --data, --header and --query", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kumo-cli-"));
    try {
      await writeFile(join(dir, "event.json"), '{"id": 1}');
      const { values } = parseFlags(["--data", "@event.json", "-H", "X-Trace: abc", "--query", "a=1", "--query", "b=x y", "--path", "users/1"], { ...globalFlags, ...(await import("./invoke.ts")).invokeCommand.flags }, "invoke");
      expect(await invokeRequest(values, dir)).toEqual({
        body: '{"id": 1}',
        headers: { "x-trace": "abc", "content-type": "application/json" },
        query: [["a", "1"], ["b", "x y"]],
        path: "/users/1",
      });
      const text = parseFlags(["--data", "hello"], { ...globalFlags, data: { type: "string", help: "" } }, "invoke");
      expect((await invokeRequest(text.values, dir)).headers).toEqual({ "content-type": "text/plain; charset=utf-8" });
      const missing = parseFlags(["--data", "@nope.json"], { ...globalFlags, data: { type: "string", help: "" } }, "invoke");
      await expect(invokeRequest(missing.values, dir)).rejects.toThrow("--data @nope.json: cannot read");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("usage errors exit 2 with a hint to --help", () => {
  it.each([
    [["deplyo"], 'error: unknown command "deplyo" (did you mean "deploy"?)\nRun \'kumo --help\' for usage.\n'],
    [["list", "--bogus"], "error: unknown flag --bogus\nRun 'kumo list --help' for usage.\n"],
    [["deploy", ".", "--timout", "3s"], "error: unknown flag --timout (did you mean --timeout?)\nRun 'kumo deploy --help' for usage.\n"],
    [["deploy"], "error: missing <dir>: kumo deploy <dir> [flags]\nRun 'kumo deploy --help' for usage.\n"],
    [["delete", "a", "b"], 'error: unexpected argument "b": kumo delete <fn> [flags]\nRun \'kumo delete --help\' for usage.\n'],
    [["list", "-o", "yaml"], 'error: --output "yaml" is not a format: use table or json\nRun \'kumo list --help\' for usage.\n'],
    [["list", "--server"], "error: flag --server needs a value\nRun 'kumo list --help' for usage.\n"],
    [["deploy", ".", "--timeout", "soon"], 'error: --timeout "soon" is not a duration: use milliseconds (500) or a number with a unit (500ms, 30s, 2m, 1h)\nRun \'kumo deploy --help\' for usage.\n'],
    [["deploy", ".", "--memory", "lots"], 'error: --memory "lots" is not valid: use a whole number from 1 to 1000000\nRun \'kumo deploy --help\' for usage.\n'],
    [["list", "--server", "localhost:8080"], 'error: --server "localhost:8080" is not a URL such as http://127.0.0.1:8080\nRun \'kumo list --help\' for usage.\n'],
  ])("kumo %j", async (args, stderr) => {
    const r = await kumo(args);
    expect(r).toEqual({ code: 2, stdout: "", stderr });
  });

  it("prints the command list for `kumo --help` and `kumo`", async () => {
    const help = await kumo(["--help"]);
    expect(help.code).toBe(0);
    for (const name of ["server", "deploy", "invoke", "list", "describe", "logs", "revisions", "delete"]) expect(help.stdout).toMatch(new RegExp(`^  ${name} `, "m"));
    const bare = await kumo([]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toBe(help.stdout);
  });

  it("prints each command's flags and examples for --help", async () => {
    const r = await kumo(["deploy", "-h"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: kumo deploy <dir> [flags]");
    expect(r.stdout).toContain("--env K=V");
    expect(r.stdout).toContain("(repeatable)");
    expect(r.stdout).toContain("--no-wait");
    expect(r.stdout).toContain("Examples:\n  kumo deploy ./hello\n");
  });

  it("prints the version", async () => {
    expect(await kumo(["--version"])).toEqual({ code: 0, stdout: "kumo 0.1.0\n", stderr: "" });
  });
});

describe("output", () => {
  it("aligns tables with the last column unpadded", () => {
    expect(table(["NAME", "AGE"], [["a", "1s"], ["longer", "2m"]])).toBe("NAME     AGE\na        1s\nlonger   2m\n");
  });

  it("formats ages, sizes and digests", () => {
    expect(formatAge("2030-01-01T11:59:15.000Z", NOW)).toBe("45s");
    expect(formatAge("2030-01-01T11:30:00.000Z", NOW)).toBe("30m");
    expect(formatAge("2029-12-31T09:00:00.000Z", NOW)).toBe("27h");
    expect(formatAge("2029-12-25T12:00:00.000Z", NOW)).toBe("7d");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1229)).toBe("1.2 KiB");
    expect(formatBytes(3 * 1024 * 1024)).toBe("3.0 MiB");
    expect(shortDigest(DIGEST)).toBe("sha256:abababababab…");
  });

  it("lists functions as a table", () => {
    const fns = [fn("hello", { ready: "True" }), fn("broken", { ready: "False" }), fn("new"), fn("stale", { ready: "True", generation: 2, observed: 1 })];
    expect(functionTable(fns, NOW)).toBe(
      [
        "NAME     READY     REVISION      RUNTIME   URL                                    AGE",
        "hello    True      hello-00001   isolate   http://127.0.0.1:8080/default/hello    5m",
        "broken   False     -             isolate   http://127.0.0.1:8080/default/broken   5m",
        "new      Unknown   -             isolate   http://127.0.0.1:8080/default/new      5m",
        "stale    Unknown   stale-00001   isolate   http://127.0.0.1:8080/default/stale    5m",
        "",
      ].join("\n"),
    );
  });

  it("shows scale settings left out as the server's defaults", () => {
    expect(scaleText({})).toBe("server defaults");
    expect(scaleText({ max: 3, scaleToZeroGraceSeconds: 60 })).toBe("min server default, max 3, target server default in flight per instance, to zero after 60s idle");
  });

  it("formats an invocation record with its error and log lines indented", () => {
    const r = rec("inv-1", { coldStart: true, outcome: "function_error", status: 500, error: "TypeError: x is undefined", logs: [{ t: 3, level: "info", message: "starting" }, { t: 9, level: "error", message: "two\nlines" }] });
    expect(formatRecord(r)).toBe(
      "2030-01-01T11:59:59.000Z  hello-00001  function_error  500  12 ms  cold  inv-1\n" +
        "    error: TypeError: x is undefined\n" +
        "    +3ms info  starting\n" +
        "    +9ms error two\n    lines\n",
    );
  });

  it("describes a function with the full condition message and invocation counts", () => {
    const f = fn("broken", { ready: "False", reason: "BuildFailed", message: "index.ts:4:1: Unexpected end of file\n  4 | }" });
    const revision: Revision = {
      apiVersion: "kumo.dev/v1",
      kind: "Revision",
      metadata: { name: "broken-00001", namespace: "default", uid: "r", resourceVersion: "3", generation: 1, creationTimestamp: "2030-01-01T11:56:00.000Z" },
      spec: { functionName: "broken", generation: 1, artifact: DIGEST, sourceDigest: DIGEST, runtime: "isolate", env: {}, limits: f.spec.limits, concurrency: 100, scale: f.spec.scale },
      status: {},
    };
    const summary = summarize([
      { seq: 1, record: rec("a", { coldStart: true, durationMs: 30 }) },
      { seq: 2, record: rec("b", { outcome: "timeout", durationMs: 10 }) },
      { seq: 3, record: rec("c", { durationMs: 20 }) },
    ]);
    expect(summary).toEqual({ total: 3, byOutcome: { success: 2, function_error: 0, timeout: 1, platform_error: 0 }, coldStarts: 1, p50Ms: 20, last: "2030-01-01T11:59:59.000Z" });
    const text = describeText(f, [revision], summary, NOW);
    expect(text).toContain("Name:            broken\n");
    expect(text).toContain("Env:             A\n");
    expect(text).toContain("  Ready=False  BuildFailed  (60s ago)\n    index.ts:4:1: Unexpected end of file\n      4 | }\n");
    expect(text).toContain(`  broken-00001   1            ${DIGEST}   2030-01-01T11:56:00.000Z\n`);
    expect(text).toContain("  3 total: 2 success, 0 function_error, 1 timeout, 0 platform_error\n  1 cold start, median 20 ms");
  });
});

describe("error rendering", () => {
  it("prints the message and each detail on its own line", () => {
    const err = new KumoApiError(400, "KUMO_E_VALIDATION", "invalid function: metadata.name: bad (and 1 more problem)", [
      { field: "metadata.name", message: "bad" },
      { field: "spec.memry", message: 'unknown field "memry"' },
    ]);
    expect(renderError(err, false)).toBe('error: invalid function: metadata.name: bad (and 1 more problem)\n  metadata.name: bad\n  spec.memry: unknown field "memry"\n');
  });

  it("does not repeat a single detail the message already says", () => {
    const err = new KumoError("KUMO_E_VALIDATION", "invalid function: spec.limits.timeoutMs: 1 is out of range", { details: [{ field: "spec.limits.timeoutMs", message: "1 is out of range" }] });
    expect(renderError(err, false)).toBe("error: invalid function: spec.limits.timeoutMs: 1 is out of range\n");
  });

  it("says how to reach the server when it is down, without a stack", () => {
    expect(renderError(new KumoConnectionError("http://127.0.0.1:8080", new Error("ECONNREFUSED")), false)).toBe(
      "error: cannot reach the Kumo server at http://127.0.0.1:8080: is `kumo server` running? (set --server or KUMO_SERVER)\n",
    );
  });

  it("shows a stack only with KUMO_DEBUG=1", () => {
    const err = new Error("boom");
    expect(renderError(err, false)).toBe("error: boom\n(set KUMO_DEBUG=1 to see where it came from)\n");
    expect(renderError(err, true)).toContain("at ");
  });
});

describe("commands against a stand-in api", () => {
  const FNS = "/apis/kumo.dev/v1/namespaces/default/functions";
  let stub: Awaited<ReturnType<typeof stubServer>>;
  let dir: string;
  let getCount = 0;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "kumo-cli-"));
    await mkdir(join(dir, "broken"));
    await writeFile(join(dir, "broken", "index.ts"), "export default () => {");
    stub = await stubServer({
      [`GET ${FNS}`]: () => ({ status: 200, body: { items: [fn("hello", { ready: "True" })] } }),
      [`GET ${FNS}/hello`]: () => ({ status: 200, body: fn("hello", { ready: "True" }) }),
      [`DELETE ${FNS}/hello`]: () => ({ status: 200, body: fn("hello") }),
      [`GET ${FNS}/ghost`]: () => ({ status: 404, body: { error: { code: "KUMO_E_FUNCTION_NOT_FOUND", message: 'function "ghost" not found in namespace "default"', details: [] } } }),
      [`GET ${FNS}/hello/invocations`]: () => ({ status: 200, body: { items: [{ seq: 1, record: rec("inv-1") }] } }),
      "POST /apis/kumo.dev/v1/namespaces/default/sources": (_req, body) => ({ status: 201, body: { digest: DIGEST, bytes: body.length } }),
      [`GET ${FNS}/broken`]: () => {
        getCount++;
        if (getCount === 1) return { status: 404, body: { error: { code: "KUMO_E_FUNCTION_NOT_FOUND", message: "not found", details: [] } } };
        if (getCount === 2) return { status: 200, body: fn("broken") };
        return { status: 200, body: fn("broken", { ready: "False", reason: "BuildFailed", message: "index.ts:1:23: Unexpected end of file" }) };
      },
      [`POST ${FNS}`]: () => ({ status: 201, body: fn("broken") }),
      "POST /default/hello": (req, body) => ({ status: 200, body: { echo: body, type: req.headers["content-type"] }, headers: { "x-kumo-invocation-id": "inv-9" } }),
      "GET /default/failing": () => ({ status: 500, body: { error: { code: "KUMO_E_FUNCTION_ERROR", message: "function threw: TypeError: boom", details: [] } } }),
      "GET /default/teapot": () => ({ status: 418, body: "short and stout" }),
    });
  });
  afterAll(async () => {
    await stub.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("lists functions as a table and as JSON, sending the token", async () => {
    const env = { KUMO_SERVER: stub.url, KUMO_API_TOKEN: "tok" };
    const table = await kumo(["list"], { env });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^NAME +READY +REVISION +RUNTIME +URL +AGE\nhello +True +hello-00001 +isolate +http:\/\/127\.0\.0\.1:8080\/default\/hello +5m\n$/);
    const asJson = await kumo(["list", "-o", "json", "--token", "flag-wins"], { env });
    expect((JSON.parse(asJson.stdout) as KumoFunction[]).map((f) => f.metadata.name)).toEqual(["hello"]);
    expect(stub.seen).toContain(`GET ${FNS} [Bearer tok]`);
    expect(stub.seen).toContain(`GET ${FNS} [Bearer flag-wins]`);
  });

  it("renders an api error with exit 1", async () => {
    expect(await kumo(["describe", "ghost", "--server", stub.url])).toEqual({ code: 1, stdout: "", stderr: 'error: function "ghost" not found in namespace "default"\n' });
  });

  it("deletes and shows logs", async () => {
    expect((await kumo(["delete", "hello", "--server", stub.url])).stdout).toBe('Deleted function "hello" from namespace "default", with its revisions and triggers.\n');
    expect((await kumo(["logs", "hello", "--server", stub.url])).stdout).toBe("2030-01-01T11:59:59.000Z  hello-00001  success  200  12 ms  inv-1\n");
    const asJson = await kumo(["logs", "hello", "-o", "json", "--server", stub.url]);
    expect(JSON.parse(asJson.stdout)).toEqual([{ seq: 1, record: rec("inv-1") }]);
    expect((await kumo(["logs", "hello", "--revision", "hello-00009", "--server", stub.url])).stderr).toBe('No invocations of "hello" on revision hello-00009 yet.\n');
  });

  it("deploys, and on a failed build prints the builder's message and exits 1", async () => {
    const r = await kumo(["deploy", "./broken", "--server", stub.url], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Packing \.\/broken: 1 file, 22 B\nUploading source sha256:[0-9a-f]{12}… \(\d+ B\)\nBuilding revision…\n/);
    expect(r.stderr).toContain('error: function "broken" is not ready: BuildFailed: index.ts:1:23: Unexpected end of file\n');
    expect(stub.seen).toContain(`POST ${FNS}`);
  });

  it("invokes a function: body to stdout, status and id with --verbose", async () => {
    const r = await kumo(["invoke", "hello", "--data", '{"a":1}', "-v", "--server", stub.url], { tty: true });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('{\n  "echo": "{\\"a\\":1}",\n  "type": "application/json"\n}\n');
    expect(r.stderr).toBe("HTTP 200 OK\ninvocation: inv-9\n");
    const piped = await kumo(["invoke", "hello", "--data", "plain", "--server", stub.url]);
    expect(piped.stdout).toBe('{"echo":"plain","type":"text/plain; charset=utf-8"}');
  });

  it("exits 1 when the function fails, printing the error's message", async () => {
    expect(await kumo(["invoke", "failing", "--server", stub.url])).toEqual({ code: 1, stdout: "", stderr: "error: function threw: TypeError: boom\n" });
    expect(await kumo(["invoke", "teapot", "--server", stub.url])).toEqual({ code: 1, stdout: "short and stout", stderr: 'error: function "teapot" answered HTTP 418 I\'m a Teapot\n' });
  });

  it("says the server is unreachable with exit 1", async () => {
    const r = await kumo(["list", "--server", "http://127.0.0.1:1"]);
    expect(r).toEqual({ code: 1, stdout: "", stderr: "error: cannot reach the Kumo server at http://127.0.0.1:1: is `kumo server` running? (set --server or KUMO_SERVER)\n" });
  });
});
