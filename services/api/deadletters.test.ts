import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KumoError } from "../model/index.ts";
import type { DeadLetter } from "../model/index.ts";
import { startTestApi } from "./api.fixture.ts";
import type { TestApi } from "./api.fixture.ts";
import { KumoClient } from "./index.ts";
import type { DeadLetterAccess, DeadLetterItem, RevisionServing } from "./index.ts";

const NS = "/apis/kumo.dev/v1/namespaces/default";

function letter(trigger: string, reason: string): DeadLetter {
  return {
    origin: "dispatcher",
    reason,
    event: { specversion: "1.0", id: `ev-${trigger}`, source: "/orders", type: "com.acme.order.created", data: { n: 1 } },
    trigger: { namespace: "default", name: trigger, function: "hello" },
    attempts: [
      { at: "2030-01-01T00:00:00.000Z", error: "boom" },
      { at: "2030-01-01T00:00:01.000Z", error: "boom" },
    ],
    time: "2030-01-01T00:00:02.000Z",
  };
}

/** A dead-letter store in memory that records every call. */
class FakeDeadLetters implements DeadLetterAccess {
  items: DeadLetterItem[] = [
    { id: "0:1", letter: letter("on-order", "function failed after 3 attempts") },
    { id: "0:2", letter: letter("nightly", "timeout") },
  ];
  calls: unknown[] = [];
  list(namespace: string, options: { limit?: number; trigger?: string }): Promise<DeadLetterItem[]> {
    this.calls.push({ list: namespace, options });
    const wanted = this.items.filter((i) => options.trigger === undefined || i.letter.trigger?.name === options.trigger);
    return Promise.resolve(wanted.slice(Math.max(0, wanted.length - (options.limit ?? 100))));
  }
  replay(namespace: string, ids: string[] | { trigger?: string }): Promise<{ replayed: number }> {
    this.calls.push({ replay: namespace, ids });
    if (Array.isArray(ids)) {
      const missing = ids.find((id) => !this.items.some((i) => i.id === id));
      if (missing !== undefined) return Promise.reject(new KumoError("KUMO_E_NOT_FOUND", `no dead letter "${missing}": list them with \`kumo events dlq\``));
      return Promise.resolve({ replayed: ids.length });
    }
    return Promise.resolve({ replayed: this.items.filter((i) => ids.trigger === undefined || i.letter.trigger?.name === ids.trigger).length });
  }
}

async function call(api: TestApi, method: string, path: string, body?: string, type = "application/json"): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${api.url}${path}`, { method, ...(body === undefined ? {} : { body, headers: { "content-type": type } }) });
  return { status: res.status, body: await res.json() };
}

function messageOf(body: unknown): string {
  return (body as { error: { message: string } }).error.message;
}

function codeOf(body: unknown): string {
  return (body as { error: { code: string } }).error.code;
}

describe("api: dead letters", () => {
  let api: TestApi;
  const fake = new FakeDeadLetters();
  beforeAll(async () => {
    api = await startTestApi({ deadLetters: fake });
  });
  afterAll(() => api.close());

  it("lists dead letters with the default limit, and of one trigger", async () => {
    const all = await call(api, "GET", `${NS}/deadletters`);
    expect(all.status).toBe(200);
    expect(all.body).toEqual({ apiVersion: "kumo.dev/v1", kind: "DeadLetterList", items: fake.items });
    expect(fake.calls.at(-1)).toEqual({ list: "default", options: { limit: 100 } });
    const one = await call(api, "GET", `${NS}/deadletters?trigger=nightly&limit=5`);
    expect((one.body as { items: DeadLetterItem[] }).items.map((i) => i.id)).toEqual(["0:2"]);
    expect(fake.calls.at(-1)).toEqual({ list: "default", options: { limit: 5, trigger: "nightly" } });
  });

  it("rejects a bad limit or trigger name with 400", async () => {
    const limit = await call(api, "GET", `${NS}/deadletters?limit=0`);
    expect(limit.status).toBe(400);
    expect(messageOf(limit.body)).toContain("limit=\"0\" is not valid");
    const trigger = await call(api, "GET", `${NS}/deadletters?trigger=Bad_Name`);
    expect(trigger.status).toBe(400);
    expect(messageOf(trigger.body)).toContain('trigger name "Bad_Name" is not a DNS-1123 label');
  });

  it("replays one dead letter by id, and says when it does not exist", async () => {
    const ok = await call(api, "POST", `${NS}/deadletters/${encodeURIComponent("0:1")}/replay`);
    expect(ok).toEqual({ status: 200, body: { replayed: 1 } });
    expect(fake.calls.at(-1)).toEqual({ replay: "default", ids: ["0:1"] });
    const missing = await call(api, "POST", `${NS}/deadletters/9:9/replay`);
    expect(missing.status).toBe(404);
    expect(codeOf(missing.body)).toBe("KUMO_E_NOT_FOUND");
  });

  it("replays all dead letters, with or without a body, or one trigger's", async () => {
    expect(await call(api, "POST", `${NS}/deadletters/replay`)).toEqual({ status: 200, body: { replayed: 2 } });
    expect(fake.calls.at(-1)).toEqual({ replay: "default", ids: {} });
    expect(await call(api, "POST", `${NS}/deadletters/replay`, "{}")).toEqual({ status: 200, body: { replayed: 2 } });
    expect(await call(api, "POST", `${NS}/deadletters/replay`, JSON.stringify({ trigger: "nightly" }))).toEqual({ status: 200, body: { replayed: 1 } });
    expect(fake.calls.at(-1)).toEqual({ replay: "default", ids: { trigger: "nightly" } });
  });

  it("rejects a replay body with unknown fields, a bad trigger or the wrong type", async () => {
    const unknown = await call(api, "POST", `${NS}/deadletters/replay`, JSON.stringify({ trigers: "x" }));
    expect(unknown.status).toBe(400);
    expect(messageOf(unknown.body)).toBe('unknown field "trigers": the only field is "trigger"');
    const bad = await call(api, "POST", `${NS}/deadletters/replay`, JSON.stringify({ trigger: 7 }));
    expect(bad.status).toBe(400);
    const array = await call(api, "POST", `${NS}/deadletters/replay`, "[]");
    expect(array.status).toBe(400);
    const text = await call(api, "POST", `${NS}/deadletters/replay`, "trigger=x", "text/plain");
    expect(text.status).toBe(415);
  });

  it("answers 405 for the wrong method", async () => {
    const a = await call(api, "DELETE", `${NS}/deadletters`);
    expect(a.status).toBe(405);
    expect((await call(api, "GET", `${NS}/deadletters/replay`)).status).toBe(405);
  });
});

describe("api: dead letters without eventing", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(() => api.close());

  it("answers 503 KUMO_E_UNAVAILABLE saying eventing is not enabled", async () => {
    for (const [method, path] of [
      ["GET", `${NS}/deadletters`],
      ["POST", `${NS}/deadletters/0:1/replay`],
      ["POST", `${NS}/deadletters/replay`],
    ] as const) {
      const a = await call(api, method, path);
      expect(a.status).toBe(503);
      expect(codeOf(a.body)).toBe("KUMO_E_UNAVAILABLE");
      expect(messageOf(a.body)).toContain("eventing is not enabled on this server");
    }
  });
});

describe("api: serving", () => {
  const rows: RevisionServing[] = [{ revision: "hello-00002", instances: 2, starting: 1, inflight: 7, queued: 3, desired: 3 }];
  let api: TestApi;
  let bare: TestApi;
  const asked: string[] = [];
  beforeAll(async () => {
    api = await startTestApi({
      serving: (ns, fn) => {
        asked.push(`${ns}/${fn}`);
        return rows;
      },
    });
    bare = await startTestApi();
    for (const a of [api, bare]) {
      const digest = ((await call(a, "POST", `${NS}/sources`, "src", "application/gzip")).body as { digest: string }).digest;
      expect((await call(a, "POST", `${NS}/functions`, JSON.stringify({ metadata: { name: "hello" }, spec: { source: { digest } } }))).status).toBe(201);
    }
  });
  afterAll(async () => {
    await api.close();
    await bare.close();
  });

  it("reports instances per revision from the serving dep", async () => {
    expect(await call(api, "GET", `${NS}/functions/hello/serving`)).toEqual({ status: 200, body: { apiVersion: "kumo.dev/v1", kind: "ServingList", items: rows } });
    expect(asked).toEqual(["default/hello"]);
  });

  it("answers an empty list without the dep, and 404 for an unknown function", async () => {
    expect((await call(bare, "GET", `${NS}/functions/hello/serving`)).body).toMatchObject({ items: [] });
    const missing = await call(api, "GET", `${NS}/functions/ghost/serving`);
    expect(missing.status).toBe(404);
    expect(codeOf(missing.body)).toBe("KUMO_E_FUNCTION_NOT_FOUND");
  });

  it("is read through the typed client", async () => {
    expect(await new KumoClient({ server: api.url }).getServing("default", "hello")).toEqual(rows);
  });
});

describe("KumoClient: dead letters and events", () => {
  let api: TestApi;
  let client: KumoClient;
  const fake = new FakeDeadLetters();
  beforeAll(async () => {
    api = await startTestApi({ deadLetters: fake, token: "tok-0123456789" });
    client = new KumoClient({ server: api.url, token: "tok-0123456789" });
  });
  afterAll(() => api.close());

  it("lists and replays dead letters", async () => {
    expect((await client.listDeadLetters("default")).map((i) => i.id)).toEqual(["0:1", "0:2"]);
    expect(await client.listDeadLetters("default", { trigger: "on-order", limit: 1 })).toEqual([fake.items[0]]);
    expect(await client.replayDeadLetter("default", "0:2")).toEqual({ replayed: 1 });
    expect(fake.calls.at(-1)).toEqual({ replay: "default", ids: ["0:2"] });
    expect(await client.replayDeadLetters("default", { trigger: "nightly" })).toEqual({ replayed: 1 });
    expect(await client.replayDeadLetters("default")).toEqual({ replayed: 2 });
    await expect(client.replayDeadLetter("default", "7:7")).rejects.toMatchObject({ status: 404, code: "KUMO_E_NOT_FOUND" });
  });

  it("publishes an event in structured mode to /events with the token", async () => {
    const seen: { type: string | undefined; auth: string | undefined; body: string }[] = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        seen.push({ type: req.headers["content-type"], auth: req.headers.authorization, body });
        res.writeHead(req.url === "/events" ? 202 : 404, { "content-type": "application/json" }).end(JSON.stringify({ accepted: 1, ids: ["e-1"] }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const c = new KumoClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: "t" });
      const event = { specversion: "1.0" as const, id: "e-1", source: "/x", type: "com.acme.x", data: { a: 1 } };
      expect(await c.publishEvent(event)).toEqual({ accepted: 1, ids: ["e-1"] });
      expect(seen).toEqual([{ type: "application/cloudevents+json; charset=utf-8", auth: "Bearer t", body: JSON.stringify(event) }]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
