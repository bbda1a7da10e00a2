// The instance backend contract: what every runtime (isolate, process, pod) must do with a bundle
// and an invocation. Each backend's test calls runExecutorContract with a factory.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KumoError } from "../../services/model/index.ts";
import type { HttpInput, Instance, InstanceBackend, InvokeRequest, InvokeResult, LoadSpec } from "../../services/model/index.ts";

let requests = 0;

/** A LoadSpec for `code` with small limits; override any field. */
export function loadSpec(code: string, overrides: Partial<LoadSpec> = {}): LoadSpec {
  return { namespace: "team-a", function: "fn", revision: "fn-00001", code, env: {}, timeoutMs: 2_000, memoryMb: 64, ...overrides };
}

/** An HTTP invocation; override any input field. */
export function httpRequest(input: Partial<HttpInput> = {}, overrides: Partial<InvokeRequest> = {}): InvokeRequest {
  return {
    requestId: `req-${++requests}`,
    kind: "http",
    input: { method: "GET", path: "/", rawQuery: "", headers: {}, body: "", ...input },
    deadline: Date.now() + 2_000,
    ...overrides,
  };
}

/** The parsed JSON error body of a failed invocation. */
export function errorBody(result: InvokeResult): { code: string; message: string; details: unknown[]; stack?: string; logs: string[] } {
  const parsed = JSON.parse(result.body) as { error: { code: string; message: string; details: unknown[]; stack?: string; logs: string[] } };
  return parsed.error;
}

/** Runs the executor contract against a backend made by `makeBackend`. */
export function runExecutorContract(name: string, makeBackend: () => Promise<InstanceBackend> | InstanceBackend): void {
  describe(`executor contract: ${name}`, () => {
    let backend: InstanceBackend;
    beforeAll(async () => {
      backend = await makeBackend();
    });
    afterAll(async () => {
      await backend.close();
    });

    async function start(code: string, overrides: Partial<LoadSpec> = {}): Promise<Instance> {
      return backend.start(loadSpec(code, overrides));
    }

    async function loadFailure(code: string): Promise<KumoError> {
      const err: unknown = await backend.start(loadSpec(code)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KumoError);
      expect((err as KumoError).code).toBe("KUMO_E_LOAD_FAILED");
      return err as KumoError;
    }

    it("passes the HTTP request to the handler: method, path, query, headers, body and json()", async () => {
      const instance = await start(
        "export default (req) => ({ method: req.method, path: req.path, query: req.query, rawQuery: req.rawQuery, headers: req.headers, body: req.body, parsed: req.json() })",
      );
      const result = await instance.invoke(
        httpRequest({ method: "POST", path: "/items/7", rawQuery: "a=1&b=x%20y&a=2&flag", headers: { "content-type": "application/json", "x-trace": "t1" }, body: '{"n":3}' }),
      );
      expect(result.outcome).toBe("success");
      expect(result.status).toBe(200);
      expect(result.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(result.body)).toEqual({
        method: "POST",
        path: "/items/7",
        query: { a: "2", b: "x y", flag: "" },
        rawQuery: "a=1&b=x%20y&a=2&flag",
        headers: { "content-type": "application/json", "x-trace": "t1" },
        body: '{"n":3}',
        parsed: { n: 3 },
      });
    });

    it("sends a returned value as JSON with 200", async () => {
      const instance = await start("export default async (req) => req.query.kind === 'list' ? [1, 'two', null] : req.query.kind === 'text' ? 'hi' : { hello: req.query.name }");
      const value = await instance.invoke(httpRequest({ rawQuery: "name=kumo" }));
      expect(value.status).toBe(200);
      expect(value.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(value.body)).toEqual({ hello: "kumo" });
      expect(JSON.parse((await instance.invoke(httpRequest({ rawQuery: "kind=list" }))).body)).toEqual([1, "two", null]);
      expect((await instance.invoke(httpRequest({ rawQuery: "kind=text" }))).body).toBe('"hi"');
    });

    it("sends a returned { status, headers, body } as the response", async () => {
      const instance = await start(`export default (req) => req.query.json
        ? { status: 202, body: { accepted: true } }
        : { status: 201, headers: { "content-type": "text/plain", "x-id": "42" }, body: "created" }`);
      const plain = await instance.invoke(httpRequest());
      expect(plain.outcome).toBe("success");
      expect(plain.status).toBe(201);
      expect(plain.headers).toMatchObject({ "content-type": "text/plain", "x-id": "42" });
      expect(plain.body).toBe("created");
      const json = await instance.invoke(httpRequest({ rawQuery: "json=1" }));
      expect(json.status).toBe(202);
      expect(json.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(json.body)).toEqual({ accepted: true });
    });

    it("treats an object with other keys besides status/headers/body as a JSON value", async () => {
      const instance = await start("export default () => ({ status: 404, reason: 'just data' })");
      const result = await instance.invoke(httpRequest());
      expect(result.status).toBe(200);
      expect(JSON.parse(result.body)).toEqual({ status: 404, reason: "just data" });
    });

    it("answers 204 with an empty body when the handler returns undefined", async () => {
      const instance = await start("export default async () => {}");
      const result = await instance.invoke(httpRequest());
      expect(result.outcome).toBe("success");
      expect(result.status).toBe(204);
      expect(result.body).toBe("");
    });

    it("passes a CloudEvent as is for event invocations", async () => {
      const instance = await start("export default (event) => ({ type: event.type, id: event.id, subject: event.subject, data: event.data, ext: event.openstackproject })");
      const event = {
        specversion: "1.0",
        id: "msg-1",
        source: "openstack/nova/compute-1",
        type: "org.openstack.nova.instance.create.end",
        subject: "vm-1",
        openstackproject: "p1",
        data: { instance_id: "vm-1", flavor: { vcpus: 2 } },
      };
      const result = await instance.invoke({ requestId: "evt-1", kind: "event", input: event, deadline: Date.now() + 2_000 });
      expect(result.outcome).toBe("success");
      expect(JSON.parse(result.body)).toEqual({ type: event.type, id: "msg-1", subject: "vm-1", data: event.data, ext: "p1" });
    });

    it("gives the handler ctx with request id, function, revision, deadline and env", async () => {
      const instance = await start(
        "export default (req, ctx) => ({ requestId: ctx.requestId, namespace: ctx.namespace, function: ctx.function, revision: ctx.revision, deadline: ctx.deadline, env: ctx.env })",
        { env: { GREETING: "hej", REGION: "tokyo" } },
      );
      const req = httpRequest({}, { requestId: "req-ctx", deadline: 4_102_444_800_000 });
      const result = await instance.invoke(req);
      expect(JSON.parse(result.body)).toEqual({
        requestId: "req-ctx",
        namespace: "team-a",
        function: "fn",
        revision: "fn-00001",
        deadline: 4_102_444_800_000,
        env: { GREETING: "hej", REGION: "tokyo" },
      });
    });

    it("returns ctx.log lines with their level in the result", async () => {
      const instance = await start("export default (req, ctx) => { ctx.log.info('start', 1); ctx.log.debug('d'); ctx.log.warn('careful'); ctx.log.error('bad', { code: 7 }); return 'ok' }");
      const result = await instance.invoke(httpRequest());
      expect(result.logs.map((l) => [l.level, l.message])).toEqual([
        ["info", "start 1"],
        ["debug", "d"],
        ["warn", "careful"],
        ["error", 'bad {"code":7}'],
      ]);
      for (const line of result.logs) expect(typeof line.t).toBe("number");
    });

    it("answers 500 with the error, its stack and the logs when the handler throws, and stays healthy", async () => {
      const instance = await start(`export default async (req, ctx) => {
        ctx.log.info("about to fail");
        if (req.query.reject) await Promise.reject(new TypeError("nope"));
        if (req.query.boom) throw new Error("boom");
        return "fine";
      }`);
      const thrown = await instance.invoke(httpRequest({ rawQuery: "boom=1" }));
      expect(thrown.outcome).toBe("function_error");
      expect(thrown.status).toBe(500);
      expect(thrown.errorCode).toBe("KUMO_E_FUNCTION_ERROR");
      const body = errorBody(thrown);
      expect(body.code).toBe("KUMO_E_FUNCTION_ERROR");
      expect(body.message).toBe("function threw: Error: boom");
      expect(body.details).toEqual([]);
      expect(body.stack).toContain("boom");
      expect(body.logs.join("\n")).toContain("about to fail");
      expect(thrown.logs.map((l) => l.message)).toEqual(["about to fail"]);
      expect(thrown.error).toContain("boom");

      const rejected = await instance.invoke(httpRequest({ rawQuery: "reject=1" }));
      expect(rejected.status).toBe(500);
      expect(errorBody(rejected).message).toBe("function threw: TypeError: nope");

      expect(instance.healthy).toBe(true);
      const ok = await instance.invoke(httpRequest());
      expect(ok.status).toBe(200);
      expect(ok.body).toBe('"fine"');
    });

    it("answers 502 when the handler returns a value that cannot be sent", async () => {
      const instance = await start("export default (req) => req.query.fn ? (() => 1) : { big: 10n }");
      for (const rawQuery of ["", "fn=1"]) {
        const result = await instance.invoke(httpRequest({ rawQuery }));
        expect(result.status).toBe(502);
        expect(result.errorCode).toBe("KUMO_E_BAD_RESPONSE");
        expect(errorBody(result).message).toContain("cannot be sent");
      }
      expect(instance.healthy).toBe(true);
    });

    for (const [what, body] of [
      ["runs an endless loop", "while (true) {}"],
      ["never resolves", "await new Promise(() => {})"],
    ] as const) {
      it(`stops a handler that ${what} at its deadline with 504, then a new instance of the same code serves`, async () => {
        const code = `export default async (req, ctx) => { ctx.log.info("working"); if (req.query.stuck) { ${body} } return "ok" }`;
        const instance = await start(code, { timeoutMs: 300 });
        const result = await instance.invoke(httpRequest({ rawQuery: "stuck=1" }, { deadline: Date.now() + 300 }));
        expect(result.outcome).toBe("timeout");
        expect(result.status).toBe(504);
        expect(result.errorCode).toBe("KUMO_E_FUNCTION_TIMEOUT");
        const error = errorBody(result);
        expect(error.message).toContain("did not finish within its timeout of 300 ms");
        expect(error.message).toContain("--timeout");
        expect(result.logs.map((l) => l.message)).toEqual(["working"]);
        expect(instance.healthy).toBe(false);

        const replacement = await start(code, { timeoutMs: 300 });
        const ok = await replacement.invoke(httpRequest());
        expect(ok.status).toBe(200);
        expect(ok.body).toBe('"ok"');
        await replacement.dispose();
      });
    }

    it("rejects a bundle with a syntax error with KUMO_E_LOAD_FAILED", async () => {
      const err = await loadFailure("export default (req => {");
      expect(err.message).toContain("syntax error");
    });

    it("rejects a bundle that throws at top level with KUMO_E_LOAD_FAILED and the thrown message", async () => {
      const err = await loadFailure("throw new Error('missing config'); export default () => 1;");
      expect(err.message).toContain("missing config");
      expect(err.message).toContain("top-level");
    });

    it("rejects a bundle without a default export with KUMO_E_LOAD_FAILED", async () => {
      const err = await loadFailure("export const handler = () => 1;");
      expect(err.message).toContain("no default export");
      expect(err.message).toContain("export default");
    });

    it("rejects a bundle whose default export is not a function with KUMO_E_LOAD_FAILED", async () => {
      const err = await loadFailure("export default { handler: 1 };");
      expect(err.message).toContain("not a function");
    });

    it("runs concurrent invocations on one instance, each with its own logs", async () => {
      const instance = await start(`export default async (req, ctx) => {
        const n = Number(req.query.n);
        ctx.log.info("begin " + n);
        await new Promise((resolve) => setTimeout(resolve, (n * 7) % 25));
        ctx.log.info("end " + n);
        return { n, requestId: ctx.requestId };
      }`);
      const requests = Array.from({ length: 20 }, (_, n) => httpRequest({ rawQuery: `n=${n}` }));
      const results = await Promise.all(requests.map((r) => instance.invoke(r)));
      results.forEach((result, n) => {
        expect(result.status).toBe(200);
        expect(JSON.parse(result.body)).toEqual({ n, requestId: requests[n]?.requestId });
        expect(result.logs.map((l) => l.message)).toEqual([`begin ${n}`, `end ${n}`]);
      });
    });

    it("answers 503 once the instance is disposed", async () => {
      const instance = await start("export default () => 'ok'");
      await instance.dispose();
      expect(instance.healthy).toBe(false);
      const result = await instance.invoke(httpRequest());
      expect(result.outcome).toBe("platform_error");
      expect(result.status).toBe(503);
    });
  });
}
