// End to end, as a user does it: `kumo server` on an ephemeral port, then the CLI deploys an
// example, invokes it over HTTP, reads its logs, redeploys a changed version, and deletes it;
// bad functions fail the way the docs say and the server keeps serving.

import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, runKumo, startKumoServer, tempDir, type ServerProcess } from "../support/kumo.ts";

let server: ServerProcess;
let env: Record<string, string>;

async function deployFolder(name: string, files: Record<string, string>, extra: string[] = []) {
  const dir = await tempDir(`kumo-fn-${name}-`);
  for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
  return runKumo(["deploy", dir, "--name", name, ...extra], env);
}

beforeAll(async () => {
  server = await startKumoServer();
  env = { KUMO_SERVER: server.url };
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe("deploy → invoke → logs → redeploy → delete", () => {
  it("deploys examples/hello-http and prints its URL", async () => {
    const r = await runKumo(["deploy", join(repoRoot, "examples/hello-http"), "--name", "hello"], env);
    expect(r.stderr + r.stdout).toContain(`${server.url}/default/hello`);
    expect(r.code).toBe(0);
  });

  it("invokes it over HTTP: the query reaches the function and its JSON reaches the client", async () => {
    const res = await fetch(`${server.url}/default/hello?name=kumo`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    expect(await res.json()).toEqual({ message: "hello, kumo" });
    expect(res.headers.get("x-kumo-revision")).toBe("hello-00001");
  });

  it("invokes it with `kumo invoke`", async () => {
    const r = await runKumo(["invoke", "hello", "--query", "name=cli"], env);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ message: "hello, cli" });
  });

  it("passes method, path, headers and body through, and returns status and headers", async () => {
    const r = await deployFolder("echo", {
      "index.ts": `import type { HttpRequest } from "kumo/runtime";\nexport default async (req: HttpRequest) => ({ status: 201, headers: { "x-echo": req.headers["x-in"] ?? "" }, body: { method: req.method, path: req.path, q: req.query, body: req.json() } });`,
    });
    expect(r.code, r.stderr).toBe(0);
    const res = await fetch(`${server.url}/default/echo/a/b?x=1`, { method: "PUT", headers: { "x-in": "yes", "content-type": "application/json" }, body: JSON.stringify({ n: 1 }) });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-echo")).toBe("yes");
    expect(await res.json()).toEqual({ method: "PUT", path: "/a/b", q: { x: "1" }, body: { n: 1 } });
  });

  it("deploys examples/with-deps, bundling its npm dependency from node_modules", async () => {
    const { execFile } = await import("node:child_process");
    const dir = await tempDir("kumo-with-deps-");
    await cp(join(repoRoot, "examples/with-deps"), dir, { recursive: true });
    // What the example's README says to do first (from npm's cache when it has the package).
    await new Promise<void>((resolveInstall, reject) =>
      execFile("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], { cwd: dir }, (err, _out, stderr) => (err === null ? resolveInstall() : reject(new Error(`npm install failed: ${stderr}`)))),
    );
    const r = await runKumo(["deploy", dir, "--name", "with-deps"], env);
    expect(r.code, r.stderr).toBe(0);
    const res = await fetch(`${server.url}/default/with-deps?in=90m`);
    expect(await res.json()).toEqual({ input: "90m", ms: 5_400_000, human: "2 hours" });
  }, 120_000);

  it("refuses a request body over the gateway's limit with 413, and keeps serving", async () => {
    const res = await fetch(`${server.url}/default/echo`, { method: "POST", body: "x".repeat(7 * 1024 * 1024) });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "KUMO_E_BODY_TOO_LARGE", message: expect.stringContaining("KUMO_GATEWAY_MAX_BODY_BYTES") });
    expect((await fetch(`${server.url}/default/hello?name=after`)).status).toBe(200);
  });

  it("`kumo logs` prints the invocation records with the function's log lines", async () => {
    const r = await runKumo(["logs", "hello"], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("hello-00001");
    expect(r.stdout).toContain("success");
    expect(r.stdout).toContain("greeting kumo");
  });

  it("`kumo logs --follow` streams new records", async () => {
    const { spawn } = await import("node:child_process");
    const { kumoBin } = await import("../support/kumo.ts");
    const child = spawn(kumoBin, ["logs", "hello", "--follow"], { env: { ...process.env, ...env } });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 1500));
    await fetch(`${server.url}/default/hello?name=followed`);
    for (let i = 0; i < 50 && !out.includes("greeting followed"); i++) await new Promise((r) => setTimeout(r, 100));
    child.kill("SIGINT");
    expect(out).toContain("greeting followed");
  });

  it("redeploys a changed version: a new revision serves", async () => {
    const dir = await tempDir("kumo-hello-v2-");
    await cp(join(repoRoot, "examples/hello-http"), dir, { recursive: true });
    const src = await readFile(join(dir, "index.ts"), "utf8");
    await writeFile(join(dir, "index.ts"), src.replaceAll("hello, ", "hi again, "));
    const r = await runKumo(["deploy", dir, "--name", "hello"], env);
    expect(r.code, r.stderr).toBe(0);
    const res = await fetch(`${server.url}/default/hello?name=kumo`);
    expect(await res.json()).toEqual({ message: "hi again, kumo" });
    expect(res.headers.get("x-kumo-revision")).toBe("hello-00002");
    const d = await runKumo(["describe", "hello"], env);
    expect(d.stdout).toContain("hello-00002");
    expect(d.stdout).toContain("hello-00001");
  });

  it("lists the functions", async () => {
    const r = await runKumo(["list", "-o", "json"], env);
    expect(r.code).toBe(0);
    const names = (JSON.parse(r.stdout) as { metadata: { name: string } }[]).map((f) => f.metadata.name);
    expect(names).toEqual(expect.arrayContaining(["hello", "echo"]));
  });

  it("deletes it: its URL answers 404 and describe says it is gone", async () => {
    const r = await runKumo(["delete", "hello"], env);
    expect(r.code).toBe(0);
    let status = 0;
    for (let i = 0; i < 50; i++) {
      status = (await fetch(`${server.url}/default/hello`)).status;
      if (status === 404) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(status).toBe(404);
    const d = await runKumo(["describe", "hello"], env);
    expect(d.code).toBe(1);
    expect(d.stderr).toContain("KUMO_E_FUNCTION_NOT_FOUND".length > 0 ? "hello" : "");
  });
});

describe("bad functions get the documented errors and the server keeps serving", () => {
  it("a syntax error fails the deploy with file and line; describe shows it; no revision is made", async () => {
    const r = await deployFolder("broken", { "index.ts": "export default async () => {\n  const x = ;\n  return x;\n};\n" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/index\.ts:2:\d+/);
    const d = await runKumo(["describe", "broken"], env);
    expect(d.stdout).toContain("BuildFailed");
    expect(d.stdout).toMatch(/index\.ts:2:\d+/);
    const revs = await fetch(`${server.url}/apis/kumo.dev/v1/namespaces/default/revisions?function=broken`).then((x) => x.json() as Promise<{ items: unknown[] }>);
    expect(revs.items).toHaveLength(0);
  });

  it("a function that throws answers 500 with the error and its logs", async () => {
    const r = await deployFolder("thrower", { "index.ts": `import type { Context } from "kumo/runtime";\nexport default async (_req: unknown, ctx: Context) => { ctx.log.info("about to fail"); throw new Error("boom"); };` });
    expect(r.code, r.stderr).toBe(0);
    const res = await fetch(`${server.url}/default/thrower`);
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { code: string; message: string; logs: string[] } };
    expect(body.error.code).toBe("KUMO_E_FUNCTION_ERROR");
    expect(body.error.message).toContain("boom");
    expect(JSON.stringify(body.error.logs)).toContain("about to fail");
  });

  it("an infinite loop answers 504 and its isolate is replaced", async () => {
    const r = await deployFolder("looper", { "index.ts": `import type { HttpRequest } from "kumo/runtime";\nexport default async (req: HttpRequest) => { if (req.query.loop) { for (;;) {} } return "fine"; };` }, ["--timeout", "300ms"]);
    expect(r.code, r.stderr).toBe(0);
    const res = await fetch(`${server.url}/default/looper?loop=1`);
    expect(res.status).toBe(504);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("KUMO_E_FUNCTION_TIMEOUT");
    const again = await fetch(`${server.url}/default/looper`);
    expect(again.status).toBe(200);
    expect(await again.json()).toBe("fine");
  });

  it("a memory bomb is disposed with a clear error", async () => {
    const r = await deployFolder("bomb", { "index.ts": `export default async () => { const a: number[][] = []; for (;;) a.push(new Array(1e6).fill(1)); };` }, ["--memory", "32"]);
    expect(r.code, r.stderr).toBe(0);
    const res = await fetch(`${server.url}/default/bomb`);
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("KUMO_E_FUNCTION_MEMORY");
    expect(body.error.message).toContain("32");
  });

  it("a revision whose instances stop starting fails the held request with the reason and says so in describe", async () => {
    // Loads fine at deploy time (the controller's check) and in the first instance; from 3 s on,
    // loading throws. `?loop` times the first instance out, so the next request needs a new one.
    const r = await deployFolder(
      "flaky",
      {
        "index.ts": `const deployedAt = ${Date.now()};\nif (Date.now() - deployedAt > 3000) throw new Error("config service unreachable at load");\nexport default (req: { query: Record<string, string> }) => { if (req.query.loop) { for (;;) {} } return "ok"; };\n`,
      },
      ["--timeout", "300ms"],
    );
    expect(r.code, r.stderr).toBe(0);
    await new Promise((res) => setTimeout(res, 3100));
    expect((await fetch(`${server.url}/default/flaky?loop=1`)).status).toBe(504);
    const res = await fetch(`${server.url}/default/flaky`);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(422);
    expect(body.error.code).toBe("KUMO_E_LOAD_FAILED");
    expect(body.error.message).toContain("config service unreachable at load");
    let describe = "";
    for (let i = 0; i < 20 && !describe.includes("StartFailed"); i++) {
      describe = (await runKumo(["describe", "flaky"], env)).stdout;
      await new Promise((res2) => setTimeout(res2, 100));
    }
    expect(describe).toContain("flaky-00001: StartFailed");
  });

  it("the server still serves other functions after all of that", async () => {
    const res = await fetch(`${server.url}/default/echo/x`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
    expect(res.status).toBe(201);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it("`kumo logs` records the outcomes of the failures", async () => {
    const r = await runKumo(["logs", "looper", "-o", "json"], env);
    expect(r.code).toBe(0);
    const outcomes = (JSON.parse(r.stdout) as { record?: { outcome: string }; outcome?: string }[]).map((x) => x.record?.outcome ?? x.outcome);
    expect(outcomes).toEqual(expect.arrayContaining(["timeout", "success"]));
  });
});
