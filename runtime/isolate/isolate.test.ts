// Isolate-specific behaviour: the web globals inside the isolate, memory limits, timeouts that
// dispose the isolate, log caps and dispatch modes (the fast path's warm-up, cap and demotion).

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InstanceBackend } from "../../services/model/index.ts";
import { errorBody, httpRequest, loadSpec } from "../../test/contract/executor.contract.ts";
import { createIsolateBackend } from "./index.ts";
import type { Dispatch, IsolateBackendOptions } from "./index.ts";

let server: Server;
let origin = "";

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      if (req.url === "/bytes") {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.end(Buffer.from([0, 1, 2, 255]));
        return;
      }
      if (req.url === "/missing") {
        res.writeHead(404, "Not Here", { "content-type": "text/plain" });
        res.end("nothing");
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "x-echo": "yes" });
      res.end(JSON.stringify({ method: req.method, url: req.url, auth: req.headers.authorization ?? null, body }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function withBackend(options: IsolateBackendOptions, body: (backend: () => InstanceBackend) => void): void {
  let backend: InstanceBackend;
  beforeAll(() => {
    backend = createIsolateBackend(options);
  });
  afterAll(async () => {
    await backend.close();
  });
  body(() => backend);
}

async function run(backend: InstanceBackend, code: string, rawQuery = ""): Promise<unknown> {
  const instance = await backend.start(loadSpec(code));
  const result = await instance.invoke(httpRequest({ rawQuery }));
  await instance.dispose();
  if (result.status !== 200) throw new Error(`handler failed with ${result.status}: ${result.body}`);
  return JSON.parse(result.body);
}

describe("isolate web globals", () => {
  withBackend({}, (backend) => {
    it("fetch reaches the host network: status, headers, text, json, arrayBuffer, method, headers and body", async () => {
      const out = await run(
        backend(),
        `export default async (req) => {
          const base = req.query.origin;
          const get = await fetch(base + "/hello?x=1", { headers: { authorization: "Bearer t" } });
          const posted = await fetch(new URL("/post", base), { method: "POST", body: "payload", headers: new Headers([["content-type", "text/plain"]]) });
          const bytes = await fetch(base + "/bytes");
          const missing = await fetch(base + "/missing");
          return {
            get: { status: get.status, ok: get.ok, echo: get.headers.get("X-Echo"), isHeaders: get.headers instanceof Headers, json: await get.json() },
            posted: JSON.parse(await posted.text()),
            bytes: Array.from(new Uint8Array(await bytes.arrayBuffer())),
            missing: { status: missing.status, ok: missing.ok, statusText: missing.statusText, text: await missing.text() },
          };
        }`,
        `origin=${encodeURIComponent(origin)}`,
      );
      expect(out).toEqual({
        get: { status: 200, ok: true, echo: "yes", isHeaders: true, json: { method: "GET", url: "/hello?x=1", auth: "Bearer t", body: "" } },
        posted: { method: "POST", url: "/post", auth: null, body: "payload" },
        bytes: [0, 1, 2, 255],
        missing: { status: 404, ok: false, statusText: "Not Here", text: "nothing" },
      });
    });

    it("fetch rejects with a TypeError when the host cannot connect", async () => {
      const out = await run(
        backend(),
        "export default async () => { try { await fetch('http://127.0.0.1:1/'); return 'connected?'; } catch (e) { return { name: e.name, message: e.message } } }",
      );
      expect(out).toMatchObject({ name: "TypeError" });
      expect((out as { message: string }).message).toContain("fetch failed");
    });

    it("Headers is case-insensitive, combines values and iterates sorted", async () => {
      const out = await run(
        backend(),
        `export default () => {
          const h = new Headers({ "Content-Type": "text/plain", "X-B": "1" });
          h.append("x-b", "2");
          h.set("X-A", "a");
          h.delete("content-type");
          return { b: h.get("X-B"), has: h.has("x-a"), gone: h.get("content-type"), entries: [...h] };
        }`,
      );
      expect(out).toEqual({ b: "1, 2", has: true, gone: null, entries: [["x-a", "a"], ["x-b", "1, 2"]] });
    });

    it("URL and URLSearchParams parse, resolve, edit and serialize like the WHATWG spec", async () => {
      const out = await run(
        backend(),
        `export default () => {
          const u = new URL("../b/c?x=1&y=a+b#frag", "https://user:pw@example.com:8443/a/z");
          u.searchParams.append("z", "é &");
          const p = new URLSearchParams({ q: "kumo fn", n: "1" });
          p.set("n", "2");
          let invalid = false;
          try { new URL("not a url"); } catch (e) { invalid = e instanceof TypeError; }
          return { href: u.href, host: u.host, origin: u.origin, pathname: u.pathname, y: u.searchParams.get("y"), hash: u.hash, params: p.toString(), canParse: URL.canParse("/x"), invalid };
        }`,
      );
      expect(out).toEqual({
        href: "https://user:pw@example.com:8443/b/c?x=1&y=a+b&z=%C3%A9+%26#frag",
        host: "example.com:8443",
        origin: "https://example.com:8443",
        pathname: "/b/c",
        y: "a b",
        hash: "#frag",
        params: "q=kumo+fn&n=2",
        canParse: false,
        invalid: true,
      });
    });

    it("TextEncoder and TextDecoder round-trip UTF-8, including astral characters", async () => {
      const out = await run(
        backend(),
        `export default () => {
          const bytes = new TextEncoder().encode("añ€😀");
          return { bytes: Array.from(bytes), text: new TextDecoder().decode(bytes), bad: new TextDecoder().decode(new Uint8Array([0x61, 0xff, 0x62])) };
        }`,
      );
      expect(out).toEqual({
        bytes: [...Buffer.from("añ€😀", "utf8")],
        text: "añ€😀",
        bad: "a\uFFFDb",
      });
    });

    it("crypto.randomUUID and crypto.getRandomValues give fresh random values", async () => {
      const out = (await run(
        backend(),
        "export default () => { const a = new Uint8Array(32); crypto.getRandomValues(a); return { ids: [crypto.randomUUID(), crypto.randomUUID()], bytes: Array.from(a) } }",
      )) as { ids: string[]; bytes: number[] };
      for (const id of out.ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(out.ids[0]).not.toBe(out.ids[1]);
      expect(new Set(out.bytes).size).toBeGreaterThan(8);
    });

    it("setTimeout fires with its arguments and clearTimeout cancels", async () => {
      const out = await run(
        backend(),
        `export default async () => {
          const fired = [];
          const cancelled = setTimeout(() => fired.push("cancelled"), 5);
          clearTimeout(cancelled);
          await new Promise((resolve) => setTimeout((a, b) => { fired.push(a + b); resolve(); }, 10, "x", "y"));
          return fired;
        }`,
      );
      expect(out).toEqual(["xy"]);
    });

    it("structuredClone deep-copies maps, dates, cycles and typed arrays", async () => {
      const out = await run(
        backend(),
        `export default () => {
          const src = { when: new Date(0), tags: new Map([["a", [1, 2]]]), bytes: new Uint8Array([1, 2]) };
          src.self = src;
          const copy = structuredClone(src);
          copy.tags.get("a").push(3);
          let fnError = "";
          try { structuredClone(() => 1); } catch (e) { fnError = e.name; }
          return { date: copy.when instanceof Date && copy.when.getTime() === 0, cycle: copy.self === copy, original: src.tags.get("a"), copied: copy.tags.get("a"), bytes: Array.from(copy.bytes), fnError };
        }`,
      );
      expect(out).toEqual({ date: true, cycle: true, original: [1, 2], copied: [1, 2, 3], bytes: [1, 2], fnError: "DataCloneError" });
    });

    it("atob and btoa convert Latin-1 strings to and from base64", async () => {
      const out = await run(
        backend(),
        "export default () => { let bad = ''; try { btoa('€'); } catch (e) { bad = e.name; } return { b: btoa('kumo\\u00ff'), a: atob('a3Vtb/8='), bad } }",
      );
      expect(out).toEqual({ b: Buffer.from("kumo\u00ff", "latin1").toString("base64"), a: "kumo\u00ff", bad: "InvalidCharacterError" });
    });

    it("console methods become log lines of the invocation", async () => {
      const instance = await backend().start(loadSpec("export default () => { console.log('l', 1); console.info('i'); console.warn('w'); console.error(new Error('e')); console.debug('d'); }"));
      const result = await instance.invoke(httpRequest());
      expect(result.logs.map((l) => l.level)).toEqual(["info", "info", "warn", "error", "debug"]);
      expect(result.logs[0]?.message).toBe("l 1");
      expect(result.logs[3]?.message).toContain("Error: e");
      await instance.dispose();
    });
  });
});

describe("isolate limits", () => {
  withBackend({}, (backend) => {
    it("reports KUMO_E_FUNCTION_MEMORY when a handler exceeds memoryMb, and other instances keep serving", async () => {
      const healthy = await backend().start(loadSpec("export default () => 'still here'", { function: "other" }));
      const bomb = await backend().start(loadSpec("export default () => { const a = []; for (;;) a.push(new Array(1e6).fill(1)); }", { memoryMb: 16 }));
      const result = await bomb.invoke(httpRequest());
      expect(result.outcome).toBe("function_error");
      expect(result.status).toBe(500);
      expect(result.errorCode).toBe("KUMO_E_FUNCTION_MEMORY");
      expect(errorBody(result).message).toContain("memory limit of 16 MB");
      expect(bomb.healthy).toBe(false);

      const ok = await healthy.invoke(httpRequest());
      expect(ok.body).toBe('"still here"');
      const fresh = await backend().start(loadSpec("export default () => 'new'"));
      expect((await fresh.invoke(httpRequest())).body).toBe('"new"');
    });

    it("caps log lines and line length", async () => {
      const instance = await backend().start(loadSpec("export default (req, ctx) => { ctx.log.info('x'.repeat(20000)); for (let i = 0; i < 1500; i++) console.log('line ' + i); }"));
      const result = await instance.invoke(httpRequest());
      expect(result.logs).toHaveLength(1001);
      expect(result.logs[0]?.message.length).toBeLessThan(8300);
      expect(result.logs[1000]?.message).toBe("… 501 lines dropped");
    });

    it("rejects a bundle that imports modules with KUMO_E_LOAD_FAILED", async () => {
      const err: unknown = await backend()
        .start(loadSpec("import fs from 'node:fs'; export default () => fs.readFileSync('/etc/passwd', 'utf8')"))
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "KUMO_E_LOAD_FAILED" });
      expect((err as Error).message).toContain('"node:fs"');
    });
  });
});

const timeoutModes: [string, IsolateBackendOptions][] = [
  ["auto dispatch", { dispatch: "auto" }],
  // On the fast path from the start, with a cap above these deadlines: the deadline stops the loop.
  ["auto dispatch, promoted", { dispatch: "auto", warmupInvocations: 0, inlineCapMs: 1_000 }],
  ["thread dispatch", { dispatch: "thread" }],
  ["inline dispatch", { dispatch: "inline" }],
];

for (const [mode, options] of timeoutModes) {
  describe(`isolate timeouts (${mode})`, () => {
    withBackend(options, (backend) => {
      it("disposes the isolate on timeout and fails the other requests in flight with 503", async () => {
        const instance = await backend().start(
          loadSpec("export default async (req) => { if (req.query.loop) { await null; for (;;) {} } await new Promise((r) => setTimeout(r, 2000)); return 'late' }", { timeoutMs: 300 }),
        );
        const slow = instance.invoke(httpRequest({}, { deadline: Date.now() + 5_000 }));
        const looping = await instance.invoke(httpRequest({ rawQuery: "loop=1" }, { deadline: Date.now() + 300 }));
        expect(looping.status).toBe(504);
        expect(looping.errorCode).toBe("KUMO_E_FUNCTION_TIMEOUT");
        expect(instance.healthy).toBe(false);
        const other = await slow;
        expect(other.outcome).toBe("platform_error");
        expect(other.status).toBe(503);
        expect(errorBody(other).message).toContain("instance was replaced");
        const after = await instance.invoke(httpRequest());
        expect(after.status).toBe(503);
      });

      it("still answers requests that finished in the same crossing as one that timed out", async () => {
        const instance = await backend().start(loadSpec("export default (req) => { if (req.query.loop) for (;;) {} return req.query.n }", { timeoutMs: 300 }));
        // Invoked in the same event-loop turn, so they enter the isolate together.
        const [first, looping] = await Promise.all([
          instance.invoke(httpRequest({ rawQuery: "n=1" }, { deadline: Date.now() + 5_000 })),
          instance.invoke(httpRequest({ rawQuery: "loop=1" }, { deadline: Date.now() + 300 })),
        ]);
        expect(first.status).toBe(200);
        expect(first.body).toBe('"1"');
        expect(looping.status).toBe(504);
      });
    });
  });
}

/** Runs `work` while a 10 ms interval watches the event loop; returns its result and the longest gap between ticks (ms). */
async function stallDuring<T>(work: () => Promise<T>): Promise<{ result: T; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 10);
  try {
    const result = await work();
    stallMs = Math.max(stallMs, performance.now() - last);
    return { result, stallMs };
  } finally {
    clearInterval(ticker);
  }
}

/** Backend options that record every dispatch change as "revision dispatch". */
function recordingDispatch(options: IsolateBackendOptions = {}): { options: IsolateBackendOptions; changes: string[] } {
  const changes: string[] = [];
  return { options: { ...options, onDispatchChange: (revision: string, dispatch: Dispatch) => changes.push(`${revision} ${dispatch}`) }, changes };
}

const LOOPER = "export default (req, ctx) => { ctx.log.info('begin ' + (req.query.n ?? 'loop')); if (req.query.loop) for (;;) {} return req.query.n ?? 'ok' }";

describe("isolate fast path (auto dispatch)", () => {
  const { options, changes } = recordingDispatch();
  withBackend(options, (backend) => {
    it("moves a revision to the calling thread after 50 quick invocations, counted across its instances", async () => {
      const spec = loadSpec("export default (req) => req.query.n", { function: "warmup" });
      const [a, b] = [await backend().start(spec), await backend().start(spec)];
      for (let n = 0; n < 49; n++) expect((await (n % 2 === 0 ? a : b).invoke(httpRequest({ rawQuery: `n=${n}` }))).body).toBe(`"${n}"`);
      expect(changes).toEqual([]);
      expect((await b.invoke(httpRequest({ rawQuery: "n=49" }))).body).toBe('"49"');
      expect(changes).toEqual(["team-a/warmup/fn-00001 inline"]);
      for (const instance of [a, b]) expect((await instance.invoke(httpRequest({ rawQuery: "n=x" }))).body).toBe('"x"');
    });

    it("keeps answering every request when the move happens under concurrent load, with timers in flight", async () => {
      const instance = await backend().start(
        loadSpec("export default async (req) => { await new Promise((r) => setTimeout(r, 1)); return req.query.n }", { function: "busy" }),
      );
      for (let round = 0; round < 4; round++) {
        const results = await Promise.all(Array.from({ length: 32 }, (_, n) => instance.invoke(httpRequest({ rawQuery: `n=${round}-${n}` }))));
        results.forEach((r, n) => expect(r.body).toBe(`"${round}-${n}"`));
      }
      expect(changes).toContain("team-a/busy/fn-00001 inline");
      expect(instance.healthy).toBe(true);
    });

    it("stops a loop on the fast path at the cap, not the 5 s timeout: 503 with its logs, not re-run; the revision then runs on threads", async () => {
      const spec = loadSpec(LOOPER, { function: "runaway", timeoutMs: 5_000 });
      const fast = await backend().start(spec);
      for (let n = 0; n < 50; n++) expect((await fast.invoke(httpRequest({ rawQuery: `n=${n}` }))).status).toBe(200);
      expect(changes).toContain("team-a/runaway/fn-00001 inline");

      const deadline = Date.now() + 5_000;
      const capped = await stallDuring(() =>
        Promise.all([fast.invoke(httpRequest({ rawQuery: "n=same-crossing" }, { deadline })), fast.invoke(httpRequest({ rawQuery: "loop=1" }, { deadline }))]),
      );
      const [finished, looping] = capped.result;
      // Blocked for about 250 ms (the cap), far below the 5 s a deadline-bound loop would block.
      expect(capped.stallMs).toBeLessThan(2_000);
      expect(finished.body).toBe('"same-crossing"');
      expect(looping.outcome).toBe("platform_error");
      expect(looping.status).toBe(503);
      expect(looping.errorCode).toBe("KUMO_E_UNAVAILABLE");
      expect(errorBody(looping).message).toBe(
        "the function ran synchronously for more than 250 ms on the fast path; its revision now runs on isolated-vm's threads: retry the request",
      );
      expect(looping.logs.map((l) => l.message)).toEqual(["begin loop"]);
      expect(fast.healthy).toBe(false);
      expect(changes).toContain("team-a/runaway/fn-00001 thread");

      // On threads now: the next loop runs to its own deadline (504) while the server keeps serving.
      const threaded = await backend().start(spec);
      const other = await backend().start(loadSpec("export default () => 'unaffected'", { function: "bystander" }));
      const order: string[] = [];
      const blocked = await stallDuring(() =>
        Promise.all([
          threaded.invoke(httpRequest({ rawQuery: "loop=1" }, { deadline: Date.now() + 1_500 })).then((r) => (order.push("loop"), r)),
          other.invoke(httpRequest()).then((r) => (order.push("bystander"), r)),
        ]),
      );
      const [timedOut, bystander] = blocked.result;
      expect(timedOut.status).toBe(504);
      expect(timedOut.errorCode).toBe("KUMO_E_FUNCTION_TIMEOUT");
      expect(timedOut.logs.map((l) => l.message)).toEqual(["begin loop"]);
      expect(bystander.body).toBe('"unaffected"');
      expect(order).toEqual(["bystander", "loop"]);
      expect(blocked.stallMs).toBeLessThan(1_000);
      const after = await backend().start(spec);
      for (let n = 0; n < 60; n++) expect((await after.invoke(httpRequest({ rawQuery: `n=${n}` }))).status).toBe(200);
      expect(changes.filter((c) => c.startsWith("team-a/runaway/"))).toEqual(["team-a/runaway/fn-00001 inline", "team-a/runaway/fn-00001 thread"]);
    });

    it("never blocks the server for a loop before the warm-up ends, and keeps that revision on threads", async () => {
      const spec = loadSpec(LOOPER, { function: "early-loop", timeoutMs: 5_000 });
      const instance = await backend().start(spec);
      const { result, stallMs } = await stallDuring(() => instance.invoke(httpRequest({ rawQuery: "loop=1" }, { deadline: Date.now() + 1_500 })));
      expect(result.status).toBe(504);
      expect(result.errorCode).toBe("KUMO_E_FUNCTION_TIMEOUT");
      expect(stallMs).toBeLessThan(1_000);
      const next = await backend().start(spec);
      for (let n = 0; n < 60; n++) expect((await next.invoke(httpRequest({ rawQuery: `n=${n}` }))).status).toBe(200);
      expect(changes.filter((c) => c.startsWith("team-a/early-loop/"))).toEqual([]);
    });
  });
});

describe("isolate dispatch", () => {
  const { options, changes } = recordingDispatch({ warmupInvocations: 0, inlineBudgetMs: 0 });
  withBackend(options, (backend) => {
    it("keeps serving, on the same and new instances, after a slow handler moves its revision to thread dispatch", async () => {
      const code = "export default (req) => { const end = Date.now() + 3; while (Date.now() < end) {} return req.query.n }";
      const first = await backend().start(loadSpec(code));
      for (const n of ["1", "2"]) expect((await first.invoke(httpRequest({ rawQuery: `n=${n}` }))).body).toBe(`"${n}"`);
      expect(changes).toEqual(["team-a/fn/fn-00001 thread"]);
      const second = await backend().start(loadSpec(code));
      expect((await second.invoke(httpRequest({ rawQuery: "n=3" }))).body).toBe('"3"');
      expect(changes).toHaveLength(1);
    });
  });

  withBackend({}, (backend) => {
    it("close() disposes every instance it started", async () => {
      const local = createIsolateBackend();
      const a = await local.start(loadSpec("export default () => 1"));
      const b = await local.start(loadSpec("export default () => 2"));
      await local.close();
      expect([a.healthy, b.healthy]).toEqual([false, false]);
      await expect(local.start(loadSpec("export default () => 3"))).rejects.toMatchObject({ code: "KUMO_E_UNAVAILABLE" });
      expect(backend().runtime).toBe("isolate");
    });
  });
});
