// The HTTP provider: `POST /events` takes CloudEvents in binary (ce-* headers), structured
// (application/cloudevents+json) and batch (application/cloudevents-batch+json) mode, validates
// them with the CloudEvents SDK, and answers 202 only after the sink made them durable.

import type { IncomingMessage, ServerResponse } from "node:http";
import { CloudEvent, HTTP, ValidationError } from "cloudevents";
import { KumoError, TRIGGER_EXTENSION } from "../../services/model/index.ts";
import type { ErrorDetail, KumoCloudEvent } from "../../services/model/index.ts";
import type { EventProvider, EventSink, ProviderHealth } from "../provider.ts";

/** Options of the HTTP provider. */
export interface HttpEventOptions {
  /** Largest request body accepted, in bytes (default 1 MiB); larger ones get 413. */
  maxBodyBytes?: number;
}

/** The default body limit: 1 MiB. */
export const DEFAULT_MAX_EVENT_BODY_BYTES = 1024 * 1024;

const STRUCTURED = "application/cloudevents";

/** The partition key of an event: its `partitionkey` extension, else its subject, else its id. */
export function eventPartitionKey(event: KumoCloudEvent): string {
  const ext = event["partitionkey"];
  if (typeof ext === "string" && ext !== "") return ext;
  if (typeof event.subject === "string" && event.subject !== "") return event.subject;
  return event.id;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, err: KumoError, headers: Record<string, string> = {}): void {
  send(res, err.status, err.toBody(), headers);
}

/** Reads the body up to `max` bytes; undefined when it is larger (the rest is discarded). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on("error", reject);
  });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

function isTextual(contentType: string): boolean {
  const media = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  return media === "application/json" || media.endsWith("+json") || media.startsWith("text/") || media.endsWith("+xml") || media === "application/xml" || /;\s*charset=/i.test(contentType);
}

function validationError(err: unknown): KumoError {
  if (err instanceof ValidationError) {
    const details: ErrorDetail[] = [];
    for (const e of err.errors ?? []) {
      if (typeof e === "string") details.push({ message: e });
      else {
        const missing = (e.params as { missingProperty?: unknown } | undefined)?.missingProperty;
        const field = typeof missing === "string" ? missing : e.instancePath.replace(/^\//, "");
        details.push(field === "" ? { message: e.message ?? "invalid" } : { field, message: e.message ?? "invalid" });
      }
    }
    const first = err.message.split("\n")[0] ?? "invalid CloudEvent";
    const summary = details.length > 0 ? details.map((d) => (d.field === undefined ? d.message : `${d.field}: ${d.message}`)).join("; ") : first;
    return new KumoError("KUMO_E_VALIDATION", `not a valid CloudEvent: ${summary}`, { details });
  }
  if (err instanceof SyntaxError) return new KumoError("KUMO_E_VALIDATION", `the body is not valid JSON: ${err.message}`);
  if (err instanceof KumoError) return err;
  return new KumoError("KUMO_E_VALIDATION", `not a valid CloudEvent: ${err instanceof Error ? err.message : String(err)}`);
}

/** The SDK's event as Kumo's plain event; `time` only if the sender set one (the SDK invents it). */
function plain(event: CloudEvent<unknown>, hadTime: boolean): KumoCloudEvent {
  const out: KumoCloudEvent = { specversion: "1.0", id: event.id, source: event.source, type: event.type };
  for (const [name, value] of Object.entries(event)) {
    if (value === undefined || value === null || name === "data_base64" || name === "datacontentencoding" || name === "schemaurl") continue;
    out[name] = value;
  }
  if (typeof event.data_base64 === "string") out.data = new Uint8Array(Buffer.from(event.data_base64, "base64"));
  else if (event.data instanceof Uint8Array) out.data = new Uint8Array(event.data);
  if (!hadTime) delete out.time;
  return out;
}

/** Parses and validates the events of a request; throws KUMO_E_VALIDATION naming the problem. */
export function parseHttpEvents(headers: Record<string, string | undefined>, body: Buffer): KumoCloudEvent[] {
  const contentType = headers["content-type"] ?? "";
  const structured = contentType.toLowerCase().startsWith(STRUCTURED);
  let raw: unknown[] | undefined;
  let messageBody: string | Buffer | undefined;
  if (structured) {
    const text = body.toString("utf8");
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw validationError(err);
    }
    raw = Array.isArray(parsed) ? parsed : [parsed];
    raw.forEach((item, i) => {
      const where = raw !== undefined && raw.length > 1 ? `event ${i}: ` : "";
      if (typeof item !== "object" || item === null) throw new KumoError("KUMO_E_VALIDATION", `${where}a CloudEvent must be a JSON object`);
      const id = (item as { id?: unknown }).id;
      // The SDK would invent an id; a sender that forgot one must hear about it.
      if (typeof id !== "string" || id === "") throw new KumoError("KUMO_E_VALIDATION", `${where}not a valid CloudEvent: id is required`, { details: [{ field: "id", message: "is required" }] });
    });
    if (raw.length === 0) throw new KumoError("KUMO_E_VALIDATION", "the batch holds no events");
    messageBody = text;
  } else {
    messageBody = body.length === 0 ? undefined : isTextual(contentType) ? body.toString("utf8") : body;
  }
  let parsed: CloudEvent<unknown> | CloudEvent<unknown>[];
  try {
    parsed = HTTP.toEvent({ headers, body: messageBody }) as CloudEvent<unknown> | CloudEvent<unknown>[];
  } catch (err) {
    const e = validationError(err);
    // The SDK rejects a whole batch for one bad event: say which one.
    if (raw !== undefined && raw.length > 1) {
      const bad = raw.findIndex((item) => {
        try {
          new CloudEvent(item as Record<string, unknown>, true);
          return false;
        } catch {
          return true;
        }
      });
      if (bad >= 0) throw new KumoError(e.code, `event ${bad}: ${e.message}`, { details: e.details });
    }
    throw e;
  }
  const list = Array.isArray(parsed) ? parsed : [parsed];
  return list.map((event, i) => {
    try {
      event.validate();
    } catch (err) {
      const e = validationError(err);
      throw list.length > 1 ? new KumoError(e.code, `event ${i}: ${e.message}`, { details: e.details }) : e;
    }
    if (event.specversion !== "1.0") throw new KumoError("KUMO_E_VALIDATION", `specversion "${event.specversion}" is not supported: send CloudEvents 1.0`);
    if (TRIGGER_EXTENSION in event) {
      throw new KumoError("KUMO_E_VALIDATION", `the extension "${TRIGGER_EXTENSION}" is reserved for Kumo: remove it (replay dead letters with \`kumo events replay\`)`);
    }
    const hadTime = structured ? typeof (raw?.[i] as { time?: unknown } | undefined)?.time === "string" : headers["ce-time"] !== undefined;
    return plain(event, hadTime);
  });
}

/** A `(req, res)` handler for `POST /events` that appends to `sink`. */
export function createHttpEventHandler(sink: () => EventSink | undefined, options: HttpEventOptions = {}): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const max = options.maxBodyBytes ?? DEFAULT_MAX_EVENT_BODY_BYTES;
  return async (req, res) => {
    if (req.method !== "POST") {
      req.resume();
      sendError(res, new KumoError("KUMO_E_METHOD_NOT_ALLOWED", `${req.method ?? "?"} is not allowed on /events: POST CloudEvents`), { allow: "POST" });
      return;
    }
    const tooLarge = (): KumoError => new KumoError("KUMO_E_BODY_TOO_LARGE", `the request body is larger than ${max} bytes: send smaller events or fewer per batch`);
    const length = Number(header(req, "content-length") ?? "0");
    if (length > max) {
      req.resume();
      sendError(res, tooLarge(), { connection: "close" });
      return;
    }
    let body: Buffer | undefined;
    try {
      body = await readBody(req, max);
    } catch {
      return; // the client went away
    }
    if (body === undefined) {
      req.resume();
      sendError(res, tooLarge(), { connection: "close" });
      return;
    }
    const headers: Record<string, string | undefined> = {};
    for (const name of Object.keys(req.headers)) headers[name.toLowerCase()] = header(req, name);
    let events: KumoCloudEvent[];
    try {
      events = parseHttpEvents(headers, body);
    } catch (err) {
      sendError(res, validationError(err));
      return;
    }
    const target = sink();
    if (target === undefined) {
      sendError(res, new KumoError("KUMO_E_UNAVAILABLE", "the HTTP event provider is not started"));
      return;
    }
    try {
      await target.append(events.map((event) => ({ event, partitionKey: eventPartitionKey(event) })));
    } catch (err) {
      const e = err instanceof KumoError ? err : new KumoError("KUMO_E_UNAVAILABLE", `the event bus did not take the events: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      sendError(res, e);
      return;
    }
    send(res, 202, { accepted: events.length, ids: events.map((e) => e.id) });
  };
}

/** The HTTP provider: mount `handler` at `POST /events` on the server's node:http listener. */
export class HttpEventProvider implements EventProvider {
  readonly name = "http";
  /** The request handler; answers 503 until start(). */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  private sink: EventSink | undefined;

  constructor(options: HttpEventOptions = {}) {
    this.handler = createHttpEventHandler(() => this.sink, options);
  }

  async start(sink: EventSink): Promise<void> {
    this.sink = sink;
  }

  async stop(): Promise<void> {
    this.sink = undefined;
  }

  health(): ProviderHealth {
    return this.sink === undefined ? { ready: false, message: "not started" } : { ready: true, message: "accepting CloudEvents at POST /events" };
  }
}
