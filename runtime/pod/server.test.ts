// The pod server in this process: invoking over HTTP, health, load failures, timeouts that replace
// the instance, the log sink, its configuration, and the entrypoint's ready line.

import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { KumoError } from "../../services/model/index.ts";
import type { InvokeRequest, InvokeResult, LogLine } from "../../services/model/index.ts";
import { LOG_TAG_HEADER, loadPodConfig, podMainPath, startPodServer, type PodServer, type PodSpec } from "./index.ts";

let dir: string;
let files = 0;
const servers: PodServer[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kumo-pod-test-"));
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function bundle(code: string): Promise<string> {
  const path = join(dir, `fn-${++files}.mjs`);
  await writeFile(path, code);
  return path;
}

function spec(codePath: string, overrides: Partial<PodSpec> = {}): PodSpec {
  return { namespace: "team-a", function: "fn", revision: "fn-00001", codePath, env: {}, timeoutMs: 2_000, memoryMb: 64, ...overrides };
}

async function serve(code: string, options: Partial<Parameters<typeof startPodServer>[0]> = {}): Promise<PodServer> {
  const server = await startPodServer({ spec: spec(await bundle(code)), ...options });
  servers.push(server);
  return server;
}

function invokeRequest(rawQuery = "", deadline = Date.now() + 2_000): InvokeRequest {
  return { requestId: "r1", kind: "http", input: { method: "GET", path: "/", rawQuery, headers: {}, body: "" }, deadline };
}

interface Reply {
  status: number;
  body: string;
}

function call(server: PodServer, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const target = server.socketPath !== undefined ? { socketPath: server.socketPath } : { host: "127.0.0.1", port: server.port };
    const req = request({ ...target, method, path, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function invoke(server: PodServer, req: InvokeRequest, headers: Record<string, string> = {}): Promise<InvokeResult> {
  const reply = await call(server, "POST", "/invoke", JSON.stringify(req), headers);
  expect(reply.status).toBe(200);
  return JSON.parse(reply.body) as InvokeResult;
}

describe("pod server", () => {
  it("answers POST /invoke with the handler's result, its ctx.log and console lines", async () => {
    const server = await serve(`export default async (req, ctx) => {
      console.log("from console", { n: 1 });
      ctx.log.warn("from ctx");
      return { name: req.query.name, fn: ctx.function, env: ctx.env };
    }`);
    expect(JSON.parse(server.readyLine)).toEqual({ ready: true, port: server.port });
    const result = await invoke(server, invokeRequest("name=kumo"));
    expect(result.outcome).toBe("success");
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body)).toEqual({ name: "kumo", fn: "fn", env: {} });
    expect(result.logs.map((l) => [l.level, l.message])).toEqual([
      ["info", 'from console {"n":1}'],
      ["warn", "from ctx"],
    ]);
  });

  it("listens on a unix socket and says so in its ready line", async () => {
    const socketPath = join(dir, "pod.sock");
    const server = await serve("export default () => 'ok'", { socketPath });
    expect(JSON.parse(server.readyLine)).toEqual({ ready: true, socket: socketPath });
    expect(server.port).toBeUndefined();
    expect((await invoke(server, invokeRequest())).body).toBe('"ok"');
  });

  it("answers GET /healthz, and 404 or 400 for other routes and malformed requests", async () => {
    const server = await serve("export default () => 1");
    expect(await call(server, "GET", "/healthz")).toEqual({ status: 200, body: '{"status":"ok"}' });
    const missing = await call(server, "GET", "/nope");
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toMatchObject({ error: { code: "KUMO_E_NOT_FOUND" } });
    const notJson = await call(server, "POST", "/invoke", "{oops");
    expect(notJson.status).toBe(400);
    expect(JSON.parse(notJson.body)).toMatchObject({ error: { code: "KUMO_E_MALFORMED_JSON" } });
    const notRequest = await call(server, "POST", "/invoke", JSON.stringify({ kind: "http" }));
    expect(notRequest.status).toBe(400);
    expect(JSON.parse(notRequest.body)).toMatchObject({ error: { code: "KUMO_E_VALIDATION" } });
  });

  // Under vitest a module import goes through vite, so syntax errors are checked on the entrypoint below.
  it("rejects a bundle without a default export function with KUMO_E_LOAD_FAILED", async () => {
    for (const [code, words] of [
      ["export const handler = () => 1;", "no default export"],
      ["export default 42;", "the default export is a number, not a function"],
    ] as const) {
      const err: unknown = await startPodServer({ spec: spec(await bundle(code)) }).then(
        (s) => s.close(),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KumoError);
      expect((err as KumoError).code).toBe("KUMO_E_LOAD_FAILED");
      expect((err as KumoError).message).toContain(words);
      expect((err as KumoError).message).toContain("fn revision fn-00001");
    }
  });

  it("loads inline code when the spec has no codePath", async () => {
    const { codePath: _unused, ...inline } = spec("");
    const server = await startPodServer({ spec: { ...inline, code: "export default () => ({ inline: true })" } });
    servers.push(server);
    expect(JSON.parse((await invoke(server, invokeRequest())).body)).toEqual({ inline: true });
  });

  it("answers a timed-out request with 504 and its logs, the others in flight with 503, then asks to be replaced", async () => {
    let replaced = 0;
    const server = await serve(
      `export default async (req, ctx) => {
        ctx.log.info("waiting " + req.query.who);
        await new Promise(() => {});
      }`,
      { onReplaced: () => replaced++ },
    );
    const slow = invoke(server, invokeRequest("who=slow", Date.now() + 60_000));
    const stuck = invoke(server, invokeRequest("who=stuck", Date.now() + 200));
    const [slowResult, stuckResult] = await Promise.all([slow, stuck]);
    expect(stuckResult.status).toBe(504);
    expect(stuckResult.errorCode).toBe("KUMO_E_FUNCTION_TIMEOUT");
    expect(stuckResult.logs.map((l) => l.message)).toEqual(["waiting stuck"]);
    expect(slowResult.status).toBe(503);
    expect(slowResult.outcome).toBe("platform_error");
    expect(replaced).toBe(1);
    expect((await call(server, "GET", "/healthz")).status).toBe(503);
    expect((await invoke(server, invokeRequest())).status).toBe(503);
    expect(replaced).toBe(1);
  });

  it("hands each log line to the log sink under the request's tag", async () => {
    const sunk: [string, LogLine][] = [];
    const server = await serve("export default (req, ctx) => { ctx.log.info('one'); console.error('two'); return 1 }", {
      logSink: (tag, line) => sunk.push([tag, line]),
    });
    await invoke(server, invokeRequest(), { [LOG_TAG_HEADER]: "7" });
    await invoke(server, invokeRequest());
    expect(sunk.map(([tag, l]) => [tag, l.level, l.message])).toEqual([
      ["7", "info", "one"],
      ["7", "error", "two"],
    ]);
  });
});

describe("pod configuration", () => {
  it("reads KUMO_POD_* and gives the handler only the named env", () => {
    const config = loadPodConfig({
      KUMO_POD_CODE_PATH: "/code/fn.mjs",
      KUMO_POD_FUNCTION: "fn",
      KUMO_POD_REVISION: "fn-00002",
      KUMO_POD_TIMEOUT_MS: "500",
      KUMO_POD_ENV_KEYS: "GREETING",
      KUMO_POD_PORT: "8080",
      GREETING: "hej",
      PATH: "/usr/bin",
    });
    expect(config.spec).toEqual({ namespace: "default", function: "fn", revision: "fn-00002", codePath: "/code/fn.mjs", env: { GREETING: "hej" }, timeoutMs: 500, memoryMb: 128 });
    expect(config.port).toBe(8080);
    expect(config.host).toBe("0.0.0.0");
    expect(config.socketPath).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("takes every variable but KUMO_POD_* as the env when no keys are named, and listens locally on an ephemeral port", () => {
    const config = loadPodConfig({ KUMO_POD_CODE_PATH: "/c.mjs", KUMO_POD_FUNCTION: "f", KUMO_POD_REVISION: "f-1", A: "1" });
    expect(config.spec.env).toEqual({ A: "1" });
    expect(config.port).toBe(0);
    expect(config.host).toBe("127.0.0.1");
  });

  it("reports every bad key at once", () => {
    let err: unknown;
    try {
      loadPodConfig({ KUMO_POD_PORT: "http", KUMO_POD_TIMEOUT_MS: "-1" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KumoError);
    expect((err as KumoError).code).toBe("KUMO_E_INVALID_CONFIG");
    expect((err as KumoError).details.map((d) => d.field).sort()).toEqual(["KUMO_POD_CODE_PATH", "KUMO_POD_FUNCTION", "KUMO_POD_PORT", "KUMO_POD_REVISION", "KUMO_POD_TIMEOUT_MS"]);
  });
});

describe("pod entrypoint", () => {
  function runMain(env: Record<string, string>): Promise<{ code: number | null; stdout: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", podMainPath], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "ignore"] });
      let stdout = "";
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (d: string) => {
        stdout += d;
        if (stdout.includes('"ready":true')) child.kill("SIGTERM");
      });
      child.on("close", (code) => resolve({ code, stdout }));
    });
  }

  it("prints its ready line, and stops on SIGTERM", async () => {
    const codePath = await bundle("export default () => 1");
    const { code, stdout } = await runMain({ KUMO_POD_CODE_PATH: codePath, KUMO_POD_FUNCTION: "fn", KUMO_POD_REVISION: "fn-1" });
    expect(JSON.parse(stdout.trim())).toMatchObject({ ready: true, port: expect.any(Number) as number });
    expect(code).toBe(0);
  });

  it("reports a load failure on stdout and exits 1", async () => {
    for (const [source, words] of [
      ["export const nothing = 1;", "no default export"],
      ["export default (req => {", "the bundle has a syntax error"],
      ["JSON.parse('{nope'); export default () => 1;", "its top-level code threw (SyntaxError"],
    ] as const) {
      const codePath = await bundle(source);
      const { code, stdout } = await runMain({ KUMO_POD_CODE_PATH: codePath, KUMO_POD_FUNCTION: "fn", KUMO_POD_REVISION: "fn-1" });
      const line = JSON.parse(stdout.trim()) as { ready: boolean; error: string };
      expect(line.ready).toBe(false);
      expect(line.error).toContain(words);
      expect(code).toBe(1);
    }
  });

  it("reports a bad configuration on stdout and exits 1", async () => {
    const { code, stdout } = await runMain({ KUMO_POD_FUNCTION: "fn", KUMO_POD_REVISION: "fn-1" });
    const line = JSON.parse(stdout.trim()) as { ready: boolean; error: string };
    expect(line).toEqual({ ready: false, error: expect.stringContaining("KUMO_POD_CODE_PATH") as string });
    expect(code).toBe(1);
  });
});
