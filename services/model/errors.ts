// The error catalogue: every error Kumo reports to a user has a stable code, an HTTP status and
// a fault (the user's or the system's). Codes are never reused; docs/errors.md documents each
// one and a test checks the two agree.

/** Whose fault an error is: the caller's input, or the platform. */
export type Fault = "user" | "system";

/** One entry of the catalogue. */
export interface ErrorSpec {
  readonly status: number;
  readonly fault: Fault;
  /** One line for docs/errors.md: when this error happens. */
  readonly summary: string;
}

/** Every error code Kumo can return, with its HTTP status. */
export const errorCatalogue = {
  KUMO_E_VALIDATION: { status: 400, fault: "user", summary: "A resource or request failed validation; details list each bad field and its fix." },
  KUMO_E_MALFORMED_JSON: { status: 400, fault: "user", summary: "The request body is not valid JSON." },
  KUMO_E_UNSUPPORTED_MEDIA_TYPE: { status: 415, fault: "user", summary: "The request body has a content type this endpoint does not accept." },
  KUMO_E_BODY_TOO_LARGE: { status: 413, fault: "user", summary: "The request body is larger than the endpoint's limit." },
  KUMO_E_UNAUTHORIZED: { status: 401, fault: "user", summary: "The api requires a bearer token (KUMO_API_TOKEN) and the request had none or a wrong one." },
  KUMO_E_NOT_FOUND: { status: 404, fault: "user", summary: "No such api path or method." },
  KUMO_E_FUNCTION_NOT_FOUND: { status: 404, fault: "user", summary: "The named function does not exist in that namespace." },
  KUMO_E_REVISION_NOT_FOUND: { status: 404, fault: "user", summary: "The named revision does not exist." },
  KUMO_E_TRIGGER_NOT_FOUND: { status: 404, fault: "user", summary: "The named trigger does not exist." },
  KUMO_E_SOURCE_NOT_FOUND: { status: 404, fault: "user", summary: "A function refers to a source archive digest that was never uploaded." },
  KUMO_E_ALREADY_EXISTS: { status: 409, fault: "user", summary: "A resource with that name already exists." },
  KUMO_E_CONFLICT: { status: 409, fault: "user", summary: "The resource changed since it was read (resourceVersion mismatch); read it again and retry." },
  KUMO_E_METHOD_NOT_ALLOWED: { status: 405, fault: "user", summary: "The HTTP method is not allowed on this path." },
  KUMO_E_FUNCTION_NOT_READY: { status: 503, fault: "user", summary: "The function exists but has no ready revision yet (building, or its build failed)." },
  KUMO_E_BUILD_FAILED: { status: 422, fault: "user", summary: "The function's source did not bundle; the message names the file and line." },
  KUMO_E_LOAD_FAILED: { status: 422, fault: "user", summary: "The bundle built but could not be loaded (it threw at load time or exports no handler)." },
  KUMO_E_FUNCTION_ERROR: { status: 500, fault: "user", summary: "The function threw an error or returned a rejected promise." },
  KUMO_E_FUNCTION_TIMEOUT: { status: 504, fault: "user", summary: "The function ran longer than its timeoutMs; its instance was replaced." },
  KUMO_E_FUNCTION_MEMORY: { status: 500, fault: "user", summary: "The function exceeded its memoryMb limit; its instance was disposed." },
  KUMO_E_BAD_RESPONSE: { status: 502, fault: "user", summary: "The function returned a value that cannot be sent as an HTTP response." },
  KUMO_E_QUEUE_FULL: { status: 503, fault: "system", summary: "Every instance of the revision is at its concurrency limit and the wait queue is full; retry later or raise scale.max / concurrency." },
  KUMO_E_QUEUE_TIMEOUT: { status: 504, fault: "system", summary: "The request waited in the queue for a free instance longer than its deadline." },
  KUMO_E_INVALID_CONFIG: { status: 500, fault: "user", summary: "The server's configuration (environment variables) is invalid; every bad key is listed." },
  KUMO_E_UNAVAILABLE: { status: 503, fault: "system", summary: "The server is shutting down or not ready." },
  KUMO_E_INTERNAL: { status: 500, fault: "system", summary: "An unexpected platform error; the message and server log say more." },
  KUMO_E_WATCH_EXPIRED: { status: 410, fault: "user", summary: "A watch asked to resume from a resourceVersion older than the retained change history; list again and watch from now." },
} as const satisfies Record<string, ErrorSpec>;

/** A code from the catalogue. */
export type ErrorCode = keyof typeof errorCatalogue;

/** One bad field: where it is and what to do about it. */
export interface ErrorDetail {
  readonly field?: string;
  readonly message: string;
}

/** The JSON body of every error response: `{ error: { code, message, details } }`. */
export interface ErrorBody {
  readonly error: { readonly code: ErrorCode; readonly message: string; readonly details: readonly ErrorDetail[] };
}

/** An error with a catalogue code; the api turns it into an HTTP status and an ErrorBody. */
export class KumoError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly fault: Fault;
  readonly details: readonly ErrorDetail[];

  constructor(code: ErrorCode, message: string, options: { details?: readonly ErrorDetail[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KumoError";
    this.code = code;
    const spec: ErrorSpec = errorCatalogue[code];
    this.status = spec.status;
    this.fault = spec.fault;
    this.details = options.details ?? [];
  }

  /** The response body for this error. */
  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

/** Wraps anything thrown into a KumoError (unknown errors become KUMO_E_INTERNAL). */
export function toKumoError(err: unknown): KumoError {
  if (err instanceof KumoError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new KumoError("KUMO_E_INTERNAL", `internal error: ${message}`, { cause: err });
}

/** True when `value` looks like an ErrorBody (used by the api client). */
export function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== "object" || value === null || !("error" in value)) return false;
  const e = (value).error;
  return typeof e === "object" && e !== null && typeof (e as { code?: unknown }).code === "string";
}
