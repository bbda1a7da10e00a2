// What only the process backend does: full Node APIs, an environment without the server's
// secrets, heap exhaustion and crashes that end one instance while the others serve on.

import { hostname } from "node:os";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KumoError } from "../../services/model/index.ts";
import type { Instance, InstanceBackend, InvokeRequest, InvokeResult, LoadSpec } from "../../services/model/index.ts";
import { createProcessBackend } from "./index.ts";

let backend: InstanceBackend;
let socketDir: string;
let requests = 0;

beforeAll(async () => {
  socketDir = await mkdtemp(join(tmpdir(), "kumo-process-test-"));
  backend = createProcessBackend({ socketDir });
});
afterAll(async () => {
  await backend.close();
  await rm(socketDir, { recursive: true, force: true });
});

function spec(code: string, overrides: Partial<LoadSpec> = {}): LoadSpec {
  return { namespace: "team-a", function: "fn", revision: "fn-00001", code, env: {}, timeoutMs: 5_000, memoryMb: 64, ...overrides };
}

function call(instance: Instance, rawQuery = "", deadline = Date.now() + 5_000): Promise<InvokeResult> {
  const req: InvokeRequest = { requestId: `req-${++requests}`, kind: "http", input: { method: "GET", path: "/", rawQuery, headers: {}, body: "" }, deadline };
  return instance.invoke(req);
}

function errorOf(result: InvokeResult): { code: string; message: string; logs: string[] } {
  return (JSON.parse(result.body) as { error: { code: string; message: string; logs: string[] } }).error;
}

describe("process backend", () => {
  it("gives the handler full Node APIs", async () => {
    const instance = await backend.start(
      spec(`import os from "node:os";
      import { createHash } from "node:crypto";
      export default () => ({ host: os.hostname(), sha: createHash("sha256").update("kumo").digest("hex").slice(0, 8), pid: process.pid })`),
    );
    const result = await call(instance);
    expect(result.status).toBe(200);
    const body = JSON.parse(result.body) as { host: string; sha: string; pid: number };
    expect(body.host).toBe(hostname());
    expect(body.sha).toBe("2be7a151");
    expect(body.pid).not.toBe(process.pid);
    await instance.dispose();
  });

  it("gives process.env the function's env but none of the server's secrets", async () => {
    const saved = process.env.KUMO_API_TOKEN;
    process.env.KUMO_API_TOKEN = "server-secret-token-123";
    let instance: Instance;
    try {
      instance = await backend.start(spec("export default () => ({ greeting: process.env.GREETING ?? null, token: process.env.KUMO_API_TOKEN ?? null, path: typeof process.env.PATH })", { env: { GREETING: "hej" } }));
    } finally {
      if (saved === undefined) delete process.env.KUMO_API_TOKEN;
      else process.env.KUMO_API_TOKEN = saved;
    }
    expect(JSON.parse((await call(instance)).body)).toEqual({ greeting: "hej", token: null, path: "string" });
    await instance.dispose();
  });

  it("answers heap exhaustion with KUMO_E_FUNCTION_MEMORY and the logs so far, while other instances serve on", async () => {
    const other = await backend.start(spec("export default () => 'still here'", { revision: "fn-00002" }));
    const code = `export default (req, ctx) => {
      if (!req.query.hog) return "fine";
      ctx.log.info("allocating");
      const hoard = [];
      for (;;) hoard.push(new Array(100_000).fill({ n: hoard.length }));
    }`;
    const instance = await backend.start(spec(code, { memoryMb: 32 }));
    const result = await call(instance, "hog=1");
    expect(result.status).toBe(500);
    expect(result.outcome).toBe("function_error");
    expect(result.errorCode).toBe("KUMO_E_FUNCTION_MEMORY");
    expect(errorOf(result).message).toContain("memory limit of 32 MB");
    expect(result.logs.map((l) => l.message)).toEqual(["allocating"]);
    expect(instance.healthy).toBe(false);
    expect((await call(instance)).status).toBe(503);

    expect((await call(other)).body).toBe('"still here"');
    const fresh = await backend.start(spec(code, { memoryMb: 32 }));
    expect((await call(fresh)).body).toBe('"fine"');
    await Promise.all([other.dispose(), fresh.dispose()]);
  });

  it("marks an instance whose process exits unhealthy, answers its request with the exit, and a new instance works", async () => {
    const code = `export default (req, ctx) => {
      if (req.query.exit) { ctx.log.warn("leaving"); process.stderr.write("bye from the handler\\n"); process.exit(3); }
      return "alive";
    }`;
    const instance = await backend.start(spec(code));
    const result = await call(instance, "exit=1");
    expect(result.status).toBe(500);
    expect(result.errorCode).toBe("KUMO_E_FUNCTION_ERROR");
    expect(errorOf(result).message).toContain("exited with code 3");
    expect(errorOf(result).message).toContain("bye from the handler");
    expect(result.logs.map((l) => l.message)).toEqual(["leaving"]);
    expect(instance.healthy).toBe(false);

    const fresh = await backend.start(spec(code));
    expect((await call(fresh)).body).toBe('"alive"');
    await fresh.dispose();
  });

  it("turns an uncaught error outside the handler's promise into an exit of that instance", async () => {
    const instance = await backend.start(spec("export default () => { setTimeout(() => { throw new Error('late boom') }, 0); return new Promise(() => {}) }"));
    const result = await call(instance);
    expect(result.status).toBe(500);
    expect(errorOf(result).message).toContain("late boom");
    expect(instance.healthy).toBe(false);
  });

  it("answers the other requests in flight with 503 when one times out, and kills the instance", async () => {
    const instance = await backend.start(spec("export default async (req) => { if (req.query.loop) for (;;) {} await new Promise((r) => setTimeout(r, 60_000)) }", { timeoutMs: 300 }));
    const waiting = call(instance, "", Date.now() + 60_000);
    const looping = call(instance, "loop=1", Date.now() + 300);
    const [waited, looped] = await Promise.all([waiting, looping]);
    expect(looped.status).toBe(504);
    expect(looped.errorCode).toBe("KUMO_E_FUNCTION_TIMEOUT");
    expect(waited.status).toBe(503);
    expect(waited.outcome).toBe("platform_error");
    expect(instance.healthy).toBe(false);
  });

  it("loads a bundle from spec.codePath and leaves that file in place", async () => {
    const codePath = join(socketDir, "given.mjs");
    await writeFile(codePath, "export default () => 'from disk'");
    const instance = await backend.start({ ...spec("ignored"), codePath });
    expect((await call(instance)).body).toBe('"from disk"');
    await instance.dispose();
    expect(await readdir(socketDir)).toContain("given.mjs");
  });

  it("rejects a bundle whose top-level code exhausts the heap with KUMO_E_LOAD_FAILED", async () => {
    const err: unknown = await backend.start(spec("const hoard = []; for (;;) hoard.push(new Array(100_000).fill(0)); export default () => 1;", { memoryMb: 32 })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KumoError);
    expect((err as KumoError).code).toBe("KUMO_E_LOAD_FAILED");
    expect((err as KumoError).message).toContain("exceeded the memory limit of 32 MB");
  });

  it("rejects with KUMO_E_LOAD_FAILED when the node binary cannot be started", async () => {
    const broken = createProcessBackend({ nodePath: join(socketDir, "no-such-node"), socketDir });
    const err: unknown = await broken.start(spec("export default () => 1")).then(
      () => undefined,
      (e: unknown) => e,
    );
    await broken.close();
    expect(err).toBeInstanceOf(KumoError);
    expect((err as KumoError).code).toBe("KUMO_E_LOAD_FAILED");
    expect((err as KumoError).message).toContain("ENOENT");
  });

  it("disposes every instance on close and refuses to start more", async () => {
    const own = createProcessBackend();
    const a = await own.start(spec("export default () => 1"));
    const b = await own.start(spec("export default () => 2"));
    await own.close();
    expect([a.healthy, b.healthy]).toEqual([false, false]);
    expect((await call(a)).status).toBe(503);
    await expect(own.start(spec("export default () => 3"))).rejects.toMatchObject({ code: "KUMO_E_UNAVAILABLE" });
  });

  it("leaves no bundle or socket files behind, even for a long revision name", async () => {
    const before = await readdir(socketDir);
    const instance = await backend.start(spec("export default () => 1", { function: "f".repeat(63), revision: `${"f".repeat(63)}-00001` }));
    expect((await call(instance)).status).toBe(200);
    const during = (await readdir(socketDir)).filter((f) => !before.includes(f));
    expect(during).toEqual([expect.stringMatching(/\.sock$/) as string]);
    await instance.dispose();
    expect(await readdir(socketDir)).toEqual(before);
  });
});
