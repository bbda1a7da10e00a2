// The typed client for the Kumo REST api, on global fetch. The CLI and the tests use it; it
// turns error responses into KumoApiError and an unreachable server into a sentence that says
// what to check.

import { isErrorBody } from "../model/index.ts";
import type { ErrorCode, ErrorDetail, FunctionSpec, KumoCloudEvent, KumoFunction, Limits, Revision, ScaleSpec, SourceRef, Trigger, TriggerSpec } from "../model/index.ts";
import type { DeadLetterItem, ReadyReport, RevisionServing } from "./app.ts";
import type { InvocationEntry } from "../store/index.ts";
import { API_ROOT, collectionPath, itemPath } from "./paths.ts";

/** Where the server is and how to authenticate. */
export interface ClientOptions {
  /** Base URL, e.g. http://127.0.0.1:8080. */
  server: string;
  /** Bearer token (KUMO_API_TOKEN). */
  token?: string;
  /** Aborts every request made through this client (the CLI links it to Ctrl-C). */
  signal?: AbortSignal;
}

/** The answer to a source upload. */
export interface SourceUpload {
  digest: string;
  bytes: number;
}

/** A list response. */
export interface ResourceList<T> {
  apiVersion: string;
  kind: string;
  items: T[];
}

/** A Function as a client sends it; the server fills in defaults. */
export interface FunctionManifest {
  apiVersion?: string;
  kind?: "Function";
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string };
  spec: Omit<Partial<FunctionSpec>, "limits" | "scale"> & { source: SourceRef; limits?: Partial<Limits>; scale?: Partial<ScaleSpec> };
}

/** A Trigger as a client sends it; delivery defaults are filled in by the server. */
export interface TriggerManifest {
  apiVersion?: string;
  kind?: "Trigger";
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string };
  spec: Omit<TriggerSpec, "delivery"> & { delivery?: Partial<TriggerSpec["delivery"]> };
}

/** The answer to a published event: how many the server appended, and their ids. */
export interface PublishedEvents {
  accepted: number;
  ids: string[];
}

/** An HTTP request to a function through the gateway. */
export interface InvokeRequest {
  method?: string;
  /** Sub-path after the function, starting with "/". */
  path?: string;
  headers?: Record<string, string>;
  query?: [string, string][];
  body?: string | Uint8Array;
}

/** The server answered with an error; carries the ErrorBody's code, message and details. */
export class KumoApiError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  readonly details: readonly ErrorDetail[];

  constructor(status: number, code: ErrorCode, message: string, details: readonly ErrorDetail[] = []) {
    super(message);
    this.name = "KumoApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** The server could not be reached, or went away in the middle of a stream. */
export class KumoConnectionError extends Error {
  constructor(server: string, cause: unknown, during?: string) {
    super(
      during === undefined
        ? `cannot reach the Kumo server at ${server}: is \`kumo server\` running? (set --server or KUMO_SERVER)`
        : `lost the connection to the Kumo server at ${server} while ${during}: the server stopped or restarted`,
      { cause },
    );
    this.name = "KumoConnectionError";
  }
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}

/** Reads an error response into a KumoApiError, whatever the body is. */
async function errorFrom(res: Response): Promise<KumoApiError> {
  const text = await res.text().catch(() => "");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (isErrorBody(body)) return new KumoApiError(res.status, body.error.code, body.error.message, body.error.details ?? []);
  const code: ErrorCode = res.status === 404 ? "KUMO_E_NOT_FOUND" : res.status >= 502 && res.status <= 504 ? "KUMO_E_UNAVAILABLE" : "KUMO_E_INTERNAL";
  const snippet = text.trim().slice(0, 200);
  return new KumoApiError(res.status, code, `server answered HTTP ${res.status}${snippet === "" ? "" : `: ${snippet}`}`);
}

/** Talks to one Kumo server. */
export class KumoClient {
  /** Base URL without a trailing slash. */
  readonly server: string;
  private readonly token: string | undefined;
  private readonly signal: AbortSignal | undefined;

  constructor(options: ClientOptions) {
    this.server = options.server.replace(/\/+$/, "");
    this.token = options.token === "" ? undefined : options.token;
    this.signal = options.signal;
  }

  private async send(method: string, path: string, init: { body?: string | Uint8Array; contentType?: string; signal?: AbortSignal; auth?: boolean; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    if (init.auth !== false && this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (init.contentType !== undefined) headers["content-type"] = init.contentType;
    const signals = [init.signal, this.signal].filter((s): s is AbortSignal => s !== undefined);
    const request: RequestInit = { method, headers, redirect: "manual" };
    if (init.body !== undefined) request.body = init.body as string | Uint8Array<ArrayBuffer>;
    if (signals.length > 0) request.signal = signals.length === 1 ? signals[0]! : AbortSignal.any(signals);
    try {
      return await fetch(`${this.server}${path}`, request);
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new KumoConnectionError(this.server, err);
    }
  }

  private async json<T>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<T> {
    const init = body === undefined ? {} : { body: JSON.stringify(body), contentType };
    const res = await this.send(method, path, init);
    if (!res.ok) throw await errorFrom(res);
    return (await res.json()) as T;
  }

  /** GET /healthz. */
  health(): Promise<{ status: string }> {
    return this.json("GET", "/healthz");
  }

  /** GET /readyz; a 503 is an answer (not ready), not an error. */
  async ready(): Promise<ReadyReport> {
    const res = await this.send("GET", "/readyz");
    if (!res.ok && res.status !== 503) throw await errorFrom(res);
    return (await res.json()) as ReadyReport;
  }

  /** GET /metrics (Prometheus text). */
  async metrics(): Promise<string> {
    const res = await this.send("GET", "/metrics");
    if (!res.ok) throw await errorFrom(res);
    return res.text();
  }

  /** Uploads a source archive; returns its digest for spec.source.digest. */
  async uploadSource(namespace: string, archive: Uint8Array, contentType = "application/gzip"): Promise<SourceUpload> {
    const res = await this.send("POST", collectionPath(namespace, "sources"), { body: archive, contentType });
    if (!res.ok) throw await errorFrom(res);
    return (await res.json()) as SourceUpload;
  }

  /** Lists functions in a namespace, or in all namespaces when it is undefined. */
  async listFunctions(namespace?: string): Promise<KumoFunction[]> {
    const path = namespace === undefined ? `${API_ROOT}/functions` : collectionPath(namespace, "functions");
    return (await this.json<ResourceList<KumoFunction>>("GET", path)).items;
  }

  /** Creates a function; KUMO_E_ALREADY_EXISTS if the name is taken. */
  createFunction(namespace: string, fn: FunctionManifest): Promise<KumoFunction> {
    return this.json("POST", collectionPath(namespace, "functions"), fn);
  }

  /** Reads a function; KUMO_E_FUNCTION_NOT_FOUND if absent. */
  getFunction(namespace: string, name: string): Promise<KumoFunction> {
    return this.json("GET", itemPath(namespace, "functions", name));
  }

  /** Replaces a function's spec; KUMO_E_CONFLICT if metadata.resourceVersion is stale. */
  replaceFunction(namespace: string, fn: FunctionManifest): Promise<KumoFunction> {
    return this.json("PUT", itemPath(namespace, "functions", fn.metadata.name), fn);
  }

  /** Deletes a function with its revisions and triggers; returns what was deleted. */
  deleteFunction(namespace: string, name: string): Promise<KumoFunction> {
    return this.json("DELETE", itemPath(namespace, "functions", name));
  }

  /** Lists revisions, optionally of one function. */
  async listRevisions(namespace: string, options: { function?: string } = {}): Promise<Revision[]> {
    const q = options.function === undefined ? "" : `?function=${encodeURIComponent(options.function)}`;
    return (await this.json<ResourceList<Revision>>("GET", `${collectionPath(namespace, "revisions")}${q}`)).items;
  }

  /** Reads one revision. */
  getRevision(namespace: string, name: string): Promise<Revision> {
    return this.json("GET", itemPath(namespace, "revisions", name));
  }

  /** Lists triggers, optionally of one function. */
  async listTriggers(namespace: string, options: { function?: string } = {}): Promise<Trigger[]> {
    const q = options.function === undefined ? "" : `?function=${encodeURIComponent(options.function)}`;
    return (await this.json<ResourceList<Trigger>>("GET", `${collectionPath(namespace, "triggers")}${q}`)).items;
  }

  /** Creates a trigger for an existing function. */
  createTrigger(namespace: string, trigger: TriggerManifest): Promise<Trigger> {
    return this.json("POST", collectionPath(namespace, "triggers"), trigger);
  }

  /** Reads a trigger. */
  getTrigger(namespace: string, name: string): Promise<Trigger> {
    return this.json("GET", itemPath(namespace, "triggers", name));
  }

  /** Replaces a trigger's spec. */
  replaceTrigger(namespace: string, trigger: TriggerManifest): Promise<Trigger> {
    return this.json("PUT", itemPath(namespace, "triggers", trigger.metadata.name), trigger);
  }

  /** Deletes a trigger. */
  deleteTrigger(namespace: string, name: string): Promise<Trigger> {
    return this.json("DELETE", itemPath(namespace, "triggers", name));
  }

  /** Invocation records, oldest first: the newest `limit` (default 100), or the first `limit` after `after`. */
  async listInvocations(namespace: string, fn: string, options: { after?: number; limit?: number } = {}): Promise<InvocationEntry[]> {
    const path = `${itemPath(namespace, "functions", fn)}/invocations${query(options)}`;
    return (await this.json<{ items: InvocationEntry[] }>("GET", path)).items;
  }

  /**
   * Streams invocation records: first the newest `limit` (or those after `after`), then each
   * new one as it is written. Ends when `signal` aborts or the server closes the stream.
   */
  async *followInvocations(namespace: string, fn: string, options: { after?: number; limit?: number; signal?: AbortSignal } = {}): AsyncGenerator<InvocationEntry> {
    const stop = new AbortController();
    const signal = options.signal === undefined ? stop.signal : AbortSignal.any([options.signal, stop.signal]);
    const path = `${itemPath(namespace, "functions", fn)}/invocations${query({ follow: "true", after: options.after, limit: options.limit })}`;
    try {
      const res = await this.send("GET", path, { signal });
      if (!res.ok) throw await errorFrom(res);
      if (res.body === null) return;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      for (;;) {
        const { done, value } = await reader.read().catch((err: unknown) => {
          if (isAbort(err)) throw err;
          throw new KumoConnectionError(this.server, err, `following invocations of ${namespace}/${fn}`);
        });
        if (done) return;
        buffered += decoder.decode(value, { stream: true });
        let nl = buffered.indexOf("\n");
        while (nl >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          nl = buffered.indexOf("\n");
          if (line === "") continue;
          const item: unknown = JSON.parse(line);
          if (isErrorBody(item)) throw new KumoApiError(500, item.error.code, item.error.message, item.error.details);
          yield item as InvocationEntry;
        }
      }
    } catch (err) {
      if (isAbort(err) && signal.aborted) return;
      throw err;
    } finally {
      stop.abort();
    }
  }

  /** How each revision of a function is being served: instances, in-flight and queued requests. */
  async getServing(namespace: string, fn: string): Promise<RevisionServing[]> {
    return (await this.json<{ items: RevisionServing[] }>("GET", `${itemPath(namespace, "functions", fn)}/serving`)).items;
  }

  /** Dead letters of the namespace's triggers, oldest first (the newest `limit`, default 100). */
  async listDeadLetters(namespace: string, options: { limit?: number; trigger?: string } = {}): Promise<DeadLetterItem[]> {
    const path = `${collectionPath(namespace, "deadletters")}${query({ limit: options.limit, trigger: options.trigger })}`;
    return (await this.json<{ items: DeadLetterItem[] }>("GET", path)).items;
  }

  /** Replays one dead letter by its id. */
  replayDeadLetter(namespace: string, id: string): Promise<{ replayed: number }> {
    return this.json("POST", `${itemPath(namespace, "deadletters", id)}/replay`);
  }

  /** Replays every dead letter of the namespace, or of one trigger. */
  replayDeadLetters(namespace: string, options: { trigger?: string } = {}): Promise<{ replayed: number }> {
    return this.json("POST", `${collectionPath(namespace, "deadletters")}/replay`, options.trigger === undefined ? {} : { trigger: options.trigger });
  }

  /**
   * Publishes a CloudEvent in structured mode to the server's HTTP event provider (`POST /events`),
   * which answers once the event is durably on the bus.
   */
  publishEvent(event: KumoCloudEvent): Promise<PublishedEvents> {
    return this.json("POST", "/events", event, "application/cloudevents+json; charset=utf-8");
  }

  /** The URL a function is served at through the gateway. */
  functionUrl(namespace: string, fn: string, path = ""): string {
    return `${this.server}/${encodeURIComponent(namespace)}/${encodeURIComponent(fn)}${path}`;
  }

  /**
   * Sends an HTTP request to a function through the gateway and returns the raw response.
   * The api token is not sent: it would reach the function's code.
   */
  invoke(namespace: string, fn: string, req: InvokeRequest = {}): Promise<Response> {
    const path = req.path === undefined || req.path === "" ? "" : req.path.startsWith("/") ? req.path : `/${req.path}`;
    const qs = req.query === undefined || req.query.length === 0 ? "" : `?${new URLSearchParams(req.query).toString()}`;
    const url = `/${encodeURIComponent(namespace)}/${encodeURIComponent(fn)}${path}${qs}`;
    const init: { body?: string | Uint8Array; auth: boolean; headers: Record<string, string> } = { auth: false, headers: req.headers ?? {} };
    if (req.body !== undefined) init.body = req.body;
    return this.send(req.method ?? (req.body === undefined ? "GET" : "POST"), url, init);
  }
}

function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s === "" ? "" : `?${s}`;
}
