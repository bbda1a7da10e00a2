// What a function author imports as "kumo/runtime": the handler types of the runtime contract
// (one signature for HTTP and events). It depends on nothing, so it can be bundled into any
// function.

/** An HTTP request as a function sees it. */
export interface HttpRequest {
  readonly method: string;
  /** The path after /{namespace}/{function}, always starting with "/". */
  readonly path: string;
  /** Query parameters; a repeated key keeps its last value (see rawQuery for all). */
  readonly query: Readonly<Record<string, string>>;
  /** The query string without "?". */
  readonly rawQuery: string;
  /** Header names are lower case. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body as text ("" when there is none). */
  readonly body: string;
  /** The body parsed as JSON (throws a SyntaxError if it is not JSON). */
  json<T = unknown>(): T;
}

/** A CloudEvent (1.0) as a function sees it. */
export interface CloudEvent<T = unknown> {
  readonly specversion: "1.0";
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly subject?: string;
  readonly time?: string;
  readonly datacontenttype?: string;
  readonly data?: T;
  /** Extensions, e.g. openstackproject, partitionkey. */
  readonly [extension: string]: unknown;
}

/** What a handler may return for HTTP: a value (sent as JSON with 200) or a full response. */
export interface HttpResponse {
  status: number;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
}

/** Log lines land in the invocation record (`kumo logs`). */
export interface Logger {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

/** What every invocation gets besides its input. */
export interface Context {
  readonly requestId: string;
  readonly namespace: string;
  readonly function: string;
  readonly revision: string;
  /** Epoch ms after which the platform stops the invocation. */
  readonly deadline: number;
  readonly env: Readonly<Record<string, string>>;
  readonly log: Logger;
}

/** The one handler signature, for HTTP requests and events alike. */
export type Handler<In = HttpRequest | CloudEvent, Out = unknown> = (input: In, ctx: Context) => Out | Promise<Out>;

/** True when the input is an HTTP request. */
export function isHttpRequest(input: HttpRequest | CloudEvent): input is HttpRequest {
  return typeof (input as HttpRequest).method === "string" && (input as CloudEvent).specversion === undefined;
}

/** True when the input is a CloudEvent. */
export function isCloudEvent(input: HttpRequest | CloudEvent): input is CloudEvent {
  return (input as CloudEvent).specversion === "1.0";
}
export * from "./openstack.ts";
