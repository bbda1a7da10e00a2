import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InvocationRecord, KumoFunction } from "../model/index.ts";
import { startTestApi } from "./api.fixture.ts";
import type { TestApi } from "./api.fixture.ts";

const FNS = "/apis/kumo.dev/v1/namespaces/default/functions";

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

async function call(api: TestApi, method: string, path: string, init: { json?: unknown; raw?: string | Uint8Array; type?: string; token?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  let body: string | Uint8Array<ArrayBuffer> | undefined;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers["content-type"] = "application/json";
  }
  if (init.raw !== undefined) body = init.raw as string | Uint8Array<ArrayBuffer>;
  if (init.type !== undefined) headers["content-type"] = init.type;
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
  const res = await fetch(`${api.url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

function errorOf(a: Answer): { code: string; message: string; details: { field?: string; message: string }[] } {
  return (a.body as { error: { code: string; message: string; details: { field?: string; message: string }[] } }).error;
}

async function upload(api: TestApi, content = "export default () => 'hi';"): Promise<string> {
  const a = await call(api, "POST", "/apis/kumo.dev/v1/namespaces/default/sources", { raw: content, type: "application/gzip" });
  expect(a.status).toBe(201);
  return (a.body as { digest: string }).digest;
}

function fnBody(name: string, digest: string, spec: Record<string, unknown> = {}): unknown {
  return { metadata: { name }, spec: { source: { digest }, ...spec } };
}

describe("api: health, readiness, metrics", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(() => api.close());

  it("answers /healthz with ok", async () => {
    const a = await call(api, "GET", "/healthz");
    expect(a).toMatchObject({ status: 200, body: { status: "ok" } });
    expect(a.headers.get("x-powered-by")).toBeNull();
    expect(a.headers.get("etag")).toBeNull();
  });

  it("answers /readyz with 200 when ready and 503 with the failing check when not", async () => {
    expect((await call(api, "GET", "/readyz")).status).toBe(200);
    api.readiness = { ready: false, checks: { controller: { ok: false, message: "starting" } } };
    const a = await call(api, "GET", "/readyz");
    expect(a.status).toBe(503);
    expect(a.body).toEqual({ ready: false, checks: { controller: { ok: false, message: "starting" } } });
  });

  it("serves Prometheus text on /metrics", async () => {
    const a = await call(api, "GET", "/metrics");
    expect(a.status).toBe(200);
    expect(a.headers.get("content-type")).toContain("text/plain");
  });
});

describe("api: functions, revisions, triggers, sources", () => {
  let api: TestApi;
  let digest: string;
  beforeAll(async () => {
    api = await startTestApi();
    digest = await upload(api);
  });
  afterAll(() => api.close());

  it("stores an uploaded source by digest", async () => {
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await api.blobs.has(digest)).toBe(true);
  });

  it("creates a function with defaults and its URL, then gets and lists it", async () => {
    const created = await call(api, "POST", FNS, { json: fnBody("hello", digest, { env: { GREETING: "hi" } }) });
    expect(created.status).toBe(201);
    expect(created.headers.get("location")).toBe(`${FNS}/hello`);
    const fn = created.body as KumoFunction;
    expect(fn).toMatchObject({
      apiVersion: "kumo.dev/v1",
      kind: "Function",
      metadata: { name: "hello", namespace: "default", generation: 1 },
      spec: { source: { digest }, runtime: "isolate", env: { GREETING: "hi" }, limits: { timeoutMs: 30000, memoryMb: 128 } },
      status: { url: "http://gateway.test/default/hello" },
    });
    const got = await call(api, "GET", `${FNS}/hello`);
    expect(got.status).toBe(200);
    expect((got.body as KumoFunction).metadata.uid).toBe(fn.metadata.uid);
    const listed = await call(api, "GET", FNS);
    expect(listed.body).toMatchObject({ kind: "FunctionList", items: [{ metadata: { name: "hello" }, status: { url: "http://gateway.test/default/hello" } }] });
    const all = await call(api, "GET", "/apis/kumo.dev/v1/functions");
    expect((all.body as { items: KumoFunction[] }).items.map((f) => f.metadata.name)).toEqual(["hello"]);
  });

  it("replaces a function's spec with its resourceVersion and bumps the generation", async () => {
    const current = (await call(api, "GET", `${FNS}/hello`)).body as KumoFunction;
    const next = { ...current, spec: { ...current.spec, limits: { timeoutMs: 5000, memoryMb: 64 } } };
    const a = await call(api, "PUT", `${FNS}/hello`, { json: next });
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ metadata: { generation: 2 }, spec: { limits: { timeoutMs: 5000, memoryMb: 64 } } });
  });

  it("rejects a replace with a stale resourceVersion as a conflict", async () => {
    const current = (await call(api, "GET", `${FNS}/hello`)).body as KumoFunction;
    await call(api, "PUT", `${FNS}/hello`, { json: { ...current, spec: { ...current.spec, concurrency: 5 } } });
    const stale = await call(api, "PUT", `${FNS}/hello`, { json: { ...current, spec: { ...current.spec, concurrency: 7 } } });
    expect(stale.status).toBe(409);
    expect(errorOf(stale).code).toBe("KUMO_E_CONFLICT");
    expect((await call(api, "GET", `${FNS}/hello`)).body).toMatchObject({ spec: { concurrency: 5 } });
  });

  it("rejects a create of a name that exists", async () => {
    const a = await call(api, "POST", FNS, { json: fnBody("hello", digest) });
    expect(a.status).toBe(409);
    expect(errorOf(a).code).toBe("KUMO_E_ALREADY_EXISTS");
    expect(errorOf(a).message).toContain("hello");
  });

  it("creates, gets, replaces and deletes a trigger of a function", async () => {
    const path = "/apis/kumo.dev/v1/namespaces/default/triggers";
    const body = { metadata: { name: "nightly" }, spec: { function: "hello", source: { kind: "cron", schedule: "0 2 * * *" } } };
    const created = await call(api, "POST", path, { json: body });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ kind: "Trigger", spec: { function: "hello", delivery: { retries: 3 } } });
    const replaced = await call(api, "PUT", `${path}/nightly`, { json: { ...body, spec: { ...body.spec, delivery: { retries: 1 } } } });
    expect(replaced.body).toMatchObject({ spec: { delivery: { retries: 1 } } });
    expect((await call(api, "GET", `${path}?function=hello`)).body).toMatchObject({ items: [{ metadata: { name: "nightly" } }] });
    expect((await call(api, "DELETE", `${path}/nightly`)).status).toBe(200);
    const gone = await call(api, "GET", `${path}/nightly`);
    expect(gone.status).toBe(404);
    expect(errorOf(gone).code).toBe("KUMO_E_TRIGGER_NOT_FOUND");
  });

  it("rejects a trigger for a function that does not exist", async () => {
    const a = await call(api, "POST", "/apis/kumo.dev/v1/namespaces/default/triggers", {
      json: { metadata: { name: "t" }, spec: { function: "nope", source: { kind: "http" } } },
    });
    expect(a.status).toBe(404);
    expect(errorOf(a)).toMatchObject({ code: "KUMO_E_FUNCTION_NOT_FOUND" });
    expect(errorOf(a).message).toContain('"nope"');
  });

  it("lists revisions, filtered by function, and gets one", async () => {
    await api.store.create("Revision", {
      apiVersion: "kumo.dev/v1",
      kind: "Revision",
      metadata: { name: "hello-00001", namespace: "default", ownerName: "hello" },
      spec: { functionName: "hello", generation: 1, artifact: digest, sourceDigest: digest, runtime: "isolate", env: {}, limits: { timeoutMs: 1000, memoryMb: 64 }, concurrency: 1, scale: { min: 0, max: 1, target: 1, scaleToZeroGraceSeconds: 30 } },
      status: {},
    });
    const listed = await call(api, "GET", "/apis/kumo.dev/v1/namespaces/default/revisions?function=hello");
    expect(listed.body).toMatchObject({ kind: "RevisionList", items: [{ metadata: { name: "hello-00001" } }] });
    expect((await call(api, "GET", "/apis/kumo.dev/v1/namespaces/default/revisions?function=other")).body).toMatchObject({ items: [] });
    expect((await call(api, "GET", "/apis/kumo.dev/v1/namespaces/default/revisions/hello-00001")).status).toBe(200);
    const missing = await call(api, "GET", "/apis/kumo.dev/v1/namespaces/default/revisions/nope-00001");
    expect(errorOf(missing).code).toBe("KUMO_E_REVISION_NOT_FOUND");
  });

  it("deletes a function together with its revisions and triggers", async () => {
    await call(api, "POST", "/apis/kumo.dev/v1/namespaces/default/triggers", {
      json: { metadata: { name: "on-vm" }, spec: { function: "hello", source: { kind: "event", filter: { prefix: { type: "org.openstack." } } } } },
    });
    const a = await call(api, "DELETE", `${FNS}/hello`);
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ metadata: { name: "hello" } });
    expect(await api.store.list("Revision", "default")).toEqual([]);
    expect(await api.store.list("Trigger", "default")).toEqual([]);
    const gone = await call(api, "GET", `${FNS}/hello`);
    expect(gone.status).toBe(404);
    expect(errorOf(gone).code).toBe("KUMO_E_FUNCTION_NOT_FOUND");
    expect(errorOf(gone).message).toContain('function "hello" not found in namespace "default"');
  });
});

describe("api: invocation records", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
    const digest = await upload(api);
    await call(api, "POST", FNS, { json: fnBody("hello", digest) });
  });
  afterAll(() => api.close());

  const record = (i: number): InvocationRecord => ({
    id: `inv-${i}`,
    namespace: "default",
    function: "hello",
    revision: "hello-00001",
    start: new Date(Date.UTC(2030, 0, 1, 0, 0, i)).toISOString(),
    durationMs: i,
    outcome: "success",
    status: 200,
    coldStart: i === 1,
    logs: [{ t: 0, level: "info", message: `line ${i}` }],
  });

  it("returns the newest records, and pages after a sequence number", async () => {
    for (let i = 1; i <= 5; i++) api.invocations.append(record(i));
    await api.invocations.flush();
    const newest = (await call(api, "GET", `${FNS}/hello/invocations?limit=2`)).body as { items: { seq: number; record: InvocationRecord }[] };
    expect(newest.items.map((e) => e.record.id)).toEqual(["inv-4", "inv-5"]);
    const after = (await call(api, "GET", `${FNS}/hello/invocations?after=${newest.items[0]!.seq}`)).body as { items: { record: InvocationRecord }[] };
    expect(after.items.map((e) => e.record.id)).toEqual(["inv-5"]);
  });

  it("streams new records as newline-delimited JSON with follow=true", async () => {
    const stop = new AbortController();
    const res = await fetch(`${api.url}${FNS}/hello/invocations?follow=true&limit=1`, { signal: stop.signal });
    expect(res.headers.get("content-type")).toContain("application/x-ndjson");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    const readLines = async (n: number): Promise<string[]> => {
      while (text.split("\n").length - 1 < n) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      return text.split("\n").filter((l) => l !== "");
    };
    expect((await readLines(1)).map((l) => (JSON.parse(l) as { record: InvocationRecord }).record.id)).toEqual(["inv-5"]);
    api.invocations.append(record(6));
    api.invocations.append(record(7));
    const lines = await readLines(3);
    expect(lines.map((l) => (JSON.parse(l) as { record: InvocationRecord }).record.id)).toEqual(["inv-5", "inv-6", "inv-7"]);
    stop.abort();
    await reader.cancel().catch(() => undefined);
    // The server is still fine after the client went away.
    expect((await call(api, "GET", "/healthz")).status).toBe(200);
  });

  it("rejects a bad limit and an unknown function", async () => {
    const bad = await call(api, "GET", `${FNS}/hello/invocations?limit=abc`);
    expect(bad.status).toBe(400);
    expect(errorOf(bad).message).toContain("limit");
    const missing = await call(api, "GET", `${FNS}/nope/invocations`);
    expect(errorOf(missing).code).toBe("KUMO_E_FUNCTION_NOT_FOUND");
  });
});

describe("api: bad input gets the exact status, code and a message naming the problem", () => {
  let api: TestApi;
  let digest: string;
  beforeAll(async () => {
    api = await startTestApi({ maxJsonBytes: 2048, maxSourceBytes: 4096 });
    digest = await upload(api);
  });
  afterAll(async () => {
    // After every bad request, the server still answers.
    expect((await call(api, "GET", "/healthz")).status).toBe(200);
    expect((await call(api, "GET", FNS)).status).toBe(200);
    await api.close();
  });

  const cases: { name: string; request: (d: string) => [string, string, { json?: unknown; raw?: string; type?: string }]; status: number; code: string; message: string; field?: string }[] = [
    { name: "invalid name My_Fn", request: (d) => ["POST", FNS, { json: fnBody("My_Fn", d) }], status: 400, code: "KUMO_E_VALIDATION", message: '"My_Fn" is not a DNS-1123 label', field: "metadata.name" },
    { name: "unknown spec key", request: (d) => ["POST", FNS, { json: fnBody("ok", d, { memry: 1 }) }], status: 400, code: "KUMO_E_VALIDATION", message: 'unknown field "memry"', field: "spec.memry" },
    { name: "timeout out of range", request: (d) => ["POST", FNS, { json: fnBody("ok", d, { limits: { timeoutMs: 1 } }) }], status: 400, code: "KUMO_E_VALIDATION", message: "1 is out of range: use 10 to 900000 ms", field: "spec.limits.timeoutMs" },
    { name: "memory out of range", request: (d) => ["POST", FNS, { json: fnBody("ok", d, { limits: { memoryMb: 99999 } }) }], status: 400, code: "KUMO_E_VALIDATION", message: "99999 is out of range", field: "spec.limits.memoryMb" },
    { name: "malformed JSON", request: () => ["POST", FNS, { raw: '{"metadata": {', type: "application/json" }], status: 400, code: "KUMO_E_MALFORMED_JSON", message: "request body is not valid JSON: " },
    { name: "oversize JSON body", request: (d) => ["POST", FNS, { json: fnBody("big", d, { env: { BIG: "x".repeat(4000) } }) }], status: 413, code: "KUMO_E_BODY_TOO_LARGE", message: "2 KiB limit" },
    { name: "wrong content type", request: (d) => ["POST", FNS, { raw: JSON.stringify(fnBody("ok", d)), type: "text/plain" }], status: 415, code: "KUMO_E_UNSUPPORTED_MEDIA_TYPE", message: `Content-Type text/plain is not accepted on POST ${FNS}: send application/json` },
    { name: "no content type", request: () => ["POST", FNS, { raw: "{}", type: "" }], status: 415, code: "KUMO_E_UNSUPPORTED_MEDIA_TYPE", message: "send application/json" },
    { name: "reserved namespace", request: (d) => ["POST", "/apis/kumo.dev/v1/namespaces/metrics/functions", { json: fnBody("ok", d) }], status: 400, code: "KUMO_E_VALIDATION", message: 'namespace "metrics" is reserved', field: "metadata.namespace" },
    { name: "namespace that is not a label", request: () => ["GET", "/apis/kumo.dev/v1/namespaces/Prod/functions", {}], status: 400, code: "KUMO_E_VALIDATION", message: '"Prod" is not a DNS-1123 label' },
    { name: "missing source digest", request: () => ["POST", FNS, { json: fnBody("ok", `sha256:${"0".repeat(64)}`) }], status: 404, code: "KUMO_E_SOURCE_NOT_FOUND", message: "upload the source first", field: "spec.source.digest" },
    { name: "JSON that is not an object", request: () => ["POST", FNS, { raw: '"just a string"', type: "application/json" }], status: 400, code: "KUMO_E_VALIDATION", message: "must be a JSON object" },
    { name: "no spec", request: () => ["POST", FNS, { json: { metadata: { name: "ok" } } }], status: 400, code: "KUMO_E_VALIDATION", message: "spec: is required" },
    { name: "name in body differs from path", request: (d) => ["PUT", `${FNS}/other`, { json: fnBody("ok", d) }], status: 400, code: "KUMO_E_VALIDATION", message: 'request path names function "other"' },
    { name: "replace of a missing function", request: (d) => ["PUT", `${FNS}/ghost`, { json: fnBody("ghost", d) }], status: 404, code: "KUMO_E_FUNCTION_NOT_FOUND", message: 'function "ghost" not found' },
    { name: "unknown path", request: () => ["GET", "/apis/kumo.dev/v1/namespaces/default/widgets", {}], status: 404, code: "KUMO_E_NOT_FOUND", message: "no such api path: GET /apis/kumo.dev/v1/namespaces/default/widgets" },
    { name: "wrong method", request: () => ["PATCH", `${FNS}/hello`, {}], status: 405, code: "KUMO_E_METHOD_NOT_ALLOWED", message: `method PATCH is not allowed on ${FNS}/hello: use GET or PUT or DELETE` },
    { name: "source with wrong content type", request: () => ["POST", "/apis/kumo.dev/v1/namespaces/default/sources", { raw: "x", type: "application/json" }], status: 415, code: "KUMO_E_UNSUPPORTED_MEDIA_TYPE", message: "send application/octet-stream or application/gzip" },
    { name: "oversize source", request: () => ["POST", "/apis/kumo.dev/v1/namespaces/default/sources", { raw: "x".repeat(5000), type: "application/octet-stream" }], status: 413, code: "KUMO_E_BODY_TOO_LARGE", message: "4 KiB limit" },
    { name: "empty source", request: () => ["POST", "/apis/kumo.dev/v1/namespaces/default/sources", { raw: "", type: "application/octet-stream" }], status: 400, code: "KUMO_E_VALIDATION", message: "source archive is empty" },
    { name: "bad trigger kind", request: () => ["POST", "/apis/kumo.dev/v1/namespaces/default/triggers", { json: { metadata: { name: "t" }, spec: { function: "hello", source: { kind: "smoke" } } } }], status: 400, code: "KUMO_E_VALIDATION", message: '"smoke" is not a trigger kind' },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const [method, path, init] = c.request(digest);
      const a = await call(api, method, path, init);
      expect(a.status).toBe(c.status);
      const err = errorOf(a);
      expect(err.code).toBe(c.code);
      expect(err.message).toContain(c.message);
      if (c.field !== undefined) expect(err.details.map((d) => d.field)).toContain(c.field);
    });
  }

  it("names the allowed methods in the Allow header", async () => {
    const a = await call(api, "PATCH", FNS);
    expect(a.headers.get("allow")).toBe("GET, POST");
  });

  it("changes nothing on a rejected create", async () => {
    expect(await api.store.list("Function", "default")).toEqual([]);
  });
});

describe("api: bearer token", () => {
  let api: TestApi;
  const token = "s3cret-token-0123456789";
  beforeAll(async () => {
    api = await startTestApi({ token });
  });
  afterAll(() => api.close());

  it("leaves /healthz and /readyz open", async () => {
    expect((await call(api, "GET", "/healthz")).status).toBe(200);
    expect((await call(api, "GET", "/readyz")).status).toBe(200);
  });

  it("rejects a request without a token, naming KUMO_API_TOKEN and --token", async () => {
    for (const path of [FNS, "/metrics", "/nowhere"]) {
      const a = await call(api, "GET", path);
      expect(a.status).toBe(401);
      expect(errorOf(a).code).toBe("KUMO_E_UNAUTHORIZED");
      expect(errorOf(a).message).toContain("KUMO_API_TOKEN");
      expect(errorOf(a).message).toContain("--token");
    }
  });

  it("rejects a wrong token", async () => {
    const a = await call(api, "GET", FNS, { token: "wrong" });
    expect(a.status).toBe(401);
    expect(errorOf(a).message).toContain("was not accepted");
  });

  it("accepts the right token", async () => {
    expect((await call(api, "GET", FNS, { token })).status).toBe(200);
  });
});

describe("api: unexpected errors", () => {
  it("answers 500 KUMO_E_INTERNAL, logs it, and keeps serving", async () => {
    const api = await startTestApi();
    const broken = api.store;
    broken.list = () => Promise.reject(new Error("disk on fire"));
    try {
      const a = await call(api, "GET", FNS);
      expect(a.status).toBe(500);
      expect(errorOf(a)).toMatchObject({ code: "KUMO_E_INTERNAL", message: "internal error: disk on fire" });
      expect(api.logged.join("\n")).toContain("disk on fire");
      expect((await call(api, "GET", "/healthz")).status).toBe(200);
    } finally {
      await api.close();
    }
  });
});
