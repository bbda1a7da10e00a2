import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { DeadLetter, KumoCloudEvent } from "../../services/model/index.ts";
import type { EventSink } from "../provider.ts";
import { HttpEventProvider } from "./index.ts";

/** A sink that keeps what it gets; `hold` delays the append until released. */
class MemorySink implements EventSink {
  readonly appended: { event: KumoCloudEvent; partitionKey?: string }[] = [];
  fail: Error | undefined;
  hold: Promise<void> | undefined;
  async append(events: readonly { event: KumoCloudEvent; partitionKey?: string }[]): Promise<void> {
    if (this.hold !== undefined) await this.hold;
    if (this.fail !== undefined) throw this.fail;
    this.appended.push(...events);
  }
  async deadLetter(_letter: DeadLetter): Promise<void> {}
}

let server: Server | undefined;

async function serve(options: { maxBodyBytes?: number } = {}): Promise<{ url: string; sink: MemorySink; provider: HttpEventProvider }> {
  const provider = new HttpEventProvider(options);
  const sink = new MemorySink();
  await provider.start(sink);
  server = createServer((req, res) => void provider.handler(req, res));
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`, sink, provider };
}

afterEach(async () => {
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
});

interface ErrorJson {
  error: { code: string; message: string; details: { field?: string; message: string }[] };
}

describe("POST /events", () => {
  it("accepts a binary-mode event with 202 after the append, keyed by subject", async () => {
    const { url, sink } = await serve();
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "ce-specversion": "1.0",
        "ce-id": "evt-1",
        "ce-source": "ci/pipeline",
        "ce-type": "dev.example.build.done",
        "ce-subject": "build-42",
        "ce-time": "2025-01-02T03:04:05.000Z",
        "ce-project": "p1",
        "content-type": "application/json",
      },
      body: JSON.stringify({ ok: true }),
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 1, ids: ["evt-1"] });
    expect(sink.appended).toEqual([
      {
        event: {
          specversion: "1.0",
          id: "evt-1",
          source: "ci/pipeline",
          type: "dev.example.build.done",
          subject: "build-42",
          time: "2025-01-02T03:04:05.000Z",
          datacontenttype: "application/json",
          project: "p1",
          data: { ok: true },
        },
        partitionKey: "build-42",
      },
    ]);
  });

  it("accepts a structured-mode event, keyed by its partitionkey extension, without inventing a time", async () => {
    const { url, sink } = await serve();
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/cloudevents+json; charset=utf-8" },
      body: JSON.stringify({ specversion: "1.0", id: "s-1", source: "app", type: "t", subject: "x", partitionkey: "tenant-7", data: [1, 2] }),
    });
    expect(res.status).toBe(202);
    expect(sink.appended[0]?.partitionKey).toBe("tenant-7");
    expect(sink.appended[0]?.event).toMatchObject({ id: "s-1", data: [1, 2], partitionkey: "tenant-7" });
    expect(sink.appended[0]?.event.time).toBeUndefined();
  });

  it("accepts a batch and keys each event by subject, else id", async () => {
    const { url, sink } = await serve();
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/cloudevents-batch+json" },
      body: JSON.stringify([
        { specversion: "1.0", id: "b-1", source: "app", type: "t", subject: "vm-1" },
        { specversion: "1.0", id: "b-2", source: "app", type: "t" },
      ]),
    });
    expect(res.status).toBe(202);
    expect(sink.appended.map((a) => a.partitionKey)).toEqual(["vm-1", "b-2"]);
  });

  it("names the bad event of a batch, and appends none of it", async () => {
    const { url, sink } = await serve();
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/cloudevents-batch+json" },
      body: JSON.stringify([
        { specversion: "1.0", id: "b-1", source: "app", type: "t" },
        { specversion: "1.0", id: "b-2", source: "app", type: "t" },
        { specversion: "1.0", id: "b-3", source: "app" },
      ]),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/^event 2: /);
    expect(sink.appended).toEqual([]);
  });

  it("keeps binary data as bytes", async () => {
    const { url, sink } = await serve();
    const res = await fetch(url, {
      method: "POST",
      headers: { "ce-specversion": "1.0", "ce-id": "bin", "ce-source": "s", "ce-type": "t", "content-type": "application/octet-stream" },
      body: new Uint8Array([0, 1, 255]),
    });
    expect(res.status).toBe(202);
    expect(sink.appended[0]?.event.data).toEqual(new Uint8Array([0, 1, 255]));
  });

  it("answers only after the sink made the event durable", async () => {
    const { url, sink } = await serve();
    let release = (): void => undefined;
    sink.hold = new Promise((r) => {
      release = r;
    });
    let answered = false;
    const pending = fetch(url, { method: "POST", headers: { "ce-specversion": "1.0", "ce-id": "w", "ce-source": "s", "ce-type": "t" } }).then((r) => {
      answered = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(answered).toBe(false);
    release();
    expect((await pending).status).toBe(202);
    expect(sink.appended).toHaveLength(1);
  });

  it.each([
    ["a binary event without source", { "ce-specversion": "1.0", "ce-id": "1", "ce-type": "t" }, undefined, "source"],
    ["a structured event without id", { "content-type": "application/cloudevents+json" }, JSON.stringify({ specversion: "1.0", source: "s", type: "t" }), "id"],
    ["a structured event without type", { "content-type": "application/cloudevents+json" }, JSON.stringify({ specversion: "1.0", id: "1", source: "s" }), "type"],
    ["malformed JSON", { "content-type": "application/cloudevents+json" }, "{nope", "JSON"],
    ["no CloudEvent at all", { "content-type": "application/json" }, "{}", "no cloud event"],
    ["the reserved kumotrigger extension", { "ce-specversion": "1.0", "ce-id": "1", "ce-type": "t", "ce-source": "s", "ce-kumotrigger": "default/x" }, undefined, "reserved"],
  ])("rejects %s with 400 KUMO_E_VALIDATION", async (_name, headers, body, mentions) => {
    const { url, sink } = await serve();
    const res = await fetch(url, { method: "POST", headers, ...(body === undefined ? {} : { body }) });
    expect(res.status).toBe(400);
    const json = (await res.json()) as ErrorJson;
    expect(json.error.code).toBe("KUMO_E_VALIDATION");
    expect(json.error.message).toContain(mentions);
    expect(sink.appended).toEqual([]);
  });

  it("names the missing attribute in the details", async () => {
    const { url } = await serve();
    const res = await fetch(url, { method: "POST", headers: { "ce-specversion": "1.0", "ce-id": "1", "ce-source": "s" } });
    const json = (await res.json()) as ErrorJson;
    expect(json.error.details).toContainEqual({ field: "type", message: "must have required property 'type'" });
  });

  it("rejects a body over the limit with 413", async () => {
    const { url, sink } = await serve({ maxBodyBytes: 100 });
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/cloudevents+json" },
      body: JSON.stringify({ specversion: "1.0", id: "1", source: "s", type: "t", data: "x".repeat(200) }),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as ErrorJson).error.code).toBe("KUMO_E_BODY_TOO_LARGE");
    expect(sink.appended).toEqual([]);
  });

  it("rejects a chunked body that grows over the limit with 413", async () => {
    const { url } = await serve({ maxBodyBytes: 100 });
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue(new TextEncoder().encode("y".repeat(50)));
        controller.close();
      },
    });
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/cloudevents+json" }, body: stream, duplex: "half" } as RequestInit);
    expect(res.status).toBe(413);
  });

  it("answers 405 to other methods", async () => {
    const { url } = await serve();
    const res = await fetch(url);
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
    expect(((await res.json()) as ErrorJson).error.code).toBe("KUMO_E_METHOD_NOT_ALLOWED");
  });

  it("answers 503 when the sink fails, and before start", async () => {
    const { url, sink, provider } = await serve();
    sink.fail = new Error("disk full");
    const headers = { "ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t" };
    const failed = await fetch(url, { method: "POST", headers });
    expect(failed.status).toBe(503);
    expect(((await failed.json()) as ErrorJson).error.message).toContain("disk full");
    await provider.stop();
    expect(provider.health().ready).toBe(false);
    expect((await fetch(url, { method: "POST", headers })).status).toBe(503);
  });
});
