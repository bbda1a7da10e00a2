import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InvocationRecord } from "../model/index.ts";
import { startTestApi } from "./api.fixture.ts";
import type { TestApi } from "./api.fixture.ts";
import { KumoApiError, KumoClient, KumoConnectionError } from "./index.ts";
import type { InvocationEntry } from "./index.ts";

const record = (id: string): InvocationRecord => ({
  id,
  namespace: "default",
  function: "hello",
  revision: "hello-00001",
  start: "2030-01-01T00:00:00.000Z",
  durationMs: 3,
  outcome: "success",
  status: 200,
  coldStart: false,
  logs: [],
});

describe("KumoClient", () => {
  let api: TestApi;
  let client: KumoClient;
  const token = "client-test-token-0123456789";
  beforeAll(async () => {
    api = await startTestApi({ token });
    client = new KumoClient({ server: `${api.url}/`, token });
  });
  afterAll(() => api.close());

  it("uploads a source, creates, reads, replaces, lists and deletes a function", async () => {
    const { digest, bytes } = await client.uploadSource("default", new TextEncoder().encode("source bytes"));
    expect(bytes).toBe(12);
    const created = await client.createFunction("default", { metadata: { name: "hello" }, spec: { source: { digest }, runtime: "isolate" } });
    expect(created.status.url).toBe("http://gateway.test/default/hello");
    const got = await client.getFunction("default", "hello");
    const replaced = await client.replaceFunction("default", { ...got, spec: { ...got.spec, concurrency: 3 } });
    expect(replaced.metadata.generation).toBe(2);
    expect((await client.listFunctions("default")).map((f) => f.metadata.name)).toEqual(["hello"]);
    expect((await client.listFunctions()).map((f) => f.metadata.namespace)).toEqual(["default"]);
    expect(await client.listRevisions("default", { function: "hello" })).toEqual([]);
  });

  it("manages triggers", async () => {
    await client.createTrigger("default", { metadata: { name: "tick" }, spec: { function: "hello", source: { kind: "cron", schedule: "* * * * *", timezone: "UTC" } } });
    const t = await client.getTrigger("default", "tick");
    await client.replaceTrigger("default", { ...t, spec: { ...t.spec, delivery: { retries: 0 } } });
    expect((await client.listTriggers("default", { function: "hello" }))[0]?.spec.delivery.retries).toBe(0);
    await client.deleteTrigger("default", "tick");
    expect(await client.listTriggers("default")).toEqual([]);
  });

  it("throws KumoApiError with the server's code, message, details and status", async () => {
    const err = await client.createFunction("default", { metadata: { name: "Bad_Name" }, spec: { source: { digest: "nope" } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KumoApiError);
    const e = err as KumoApiError;
    expect(e.status).toBe(400);
    expect(e.code).toBe("KUMO_E_VALIDATION");
    expect(e.details.map((d) => d.field)).toEqual(["metadata.name", "spec.source.digest"]);
    const missing = await client.getFunction("default", "ghost").catch((x: unknown) => x);
    expect(missing).toMatchObject({ status: 404, code: "KUMO_E_FUNCTION_NOT_FOUND" });
  });

  it("reports a wrong token as KUMO_E_UNAUTHORIZED", async () => {
    const wrong = new KumoClient({ server: api.url, token: "nope" });
    await expect(wrong.listFunctions("default")).rejects.toMatchObject({ status: 401, code: "KUMO_E_UNAUTHORIZED" });
    expect(await wrong.health()).toEqual({ status: "ok" });
  });

  it("reads readiness, including not ready", async () => {
    expect((await client.ready()).ready).toBe(true);
    api.readiness = { ready: false, checks: { store: { ok: false, message: "locked" } } };
    expect(await client.ready()).toEqual({ ready: false, checks: { store: { ok: false, message: "locked" } } });
    api.readiness = { ready: true, checks: {} };
  });

  it("lists invocations and follows new ones until aborted", async () => {
    api.invocations.append(record("a"));
    await api.invocations.flush();
    expect((await client.listInvocations("default", "hello")).map((e) => e.record.id)).toEqual(["a"]);
    const stop = new AbortController();
    const seen: InvocationEntry[] = [];
    const following = (async () => {
      for await (const entry of client.followInvocations("default", "hello", { limit: 10, signal: stop.signal })) {
        seen.push(entry);
        if (seen.length === 1) api.invocations.append(record("b"));
        if (seen.length === 2) stop.abort();
      }
    })();
    await following;
    expect(seen.map((e) => e.record.id)).toEqual(["a", "b"]);
    expect(seen[1]!.seq).toBeGreaterThan(seen[0]!.seq);
  });

  it("stops following when the loop breaks", async () => {
    for await (const entry of client.followInvocations("default", "hello", { after: 0 })) {
      expect(entry.record.id).toBe("a");
      break;
    }
    expect((await client.health()).status).toBe("ok");
  });

  it("deletes a function", async () => {
    await client.deleteFunction("default", "hello");
    await expect(client.getFunction("default", "hello")).rejects.toMatchObject({ code: "KUMO_E_FUNCTION_NOT_FOUND" });
  });
});

describe("KumoClient against no server", () => {
  it("says the server cannot be reached and how to point at it", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const client = new KumoClient({ server: `http://127.0.0.1:${port}` });
    const err = await client.listFunctions("default").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KumoConnectionError);
    expect((err as Error).message).toBe(`cannot reach the Kumo server at http://127.0.0.1:${port}: is \`kumo server\` running? (set --server or KUMO_SERVER)`);
  });

  it("turns a non-Kumo error response into a KumoApiError with the body's start", async () => {
    const server = createServer((_req, res) => {
      res.writeHead(502, { "content-type": "text/html" }).end("<h1>Bad Gateway</h1>");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const client = new KumoClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
      await expect(client.listFunctions("default")).rejects.toMatchObject({ status: 502, code: "KUMO_E_UNAVAILABLE", message: "server answered HTTP 502: <h1>Bad Gateway</h1>" });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
