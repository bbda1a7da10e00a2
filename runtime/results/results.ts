// Invocation results shared by every runtime: how a handler's return value becomes a response,
// and the failures (thrown errors, timeouts, memory, lost instances), so a function answers the
// same whichever runtime runs it. (The isolate's in-isolate prelude mirrors responseFor in JS.)

import type { InvokeResult, LogLine, Outcome } from "../../services/model/index.ts";

const JSON_TYPE = "application/json";

/** Most log lines one invocation keeps; later lines are counted and reported as dropped. */
export const MAX_LOG_LINES = 1000;
/** Longest log line kept; longer ones are cut. */
export const MAX_LOG_LINE_CHARS = 8192;

/** One value as a log line shows it: strings as they are, errors with their stack, the rest as JSON. */
export function formatValue(v: unknown): string {
  switch (typeof v) {
    case "string":
      return v;
    case "bigint":
      return String(v) + "n";
    case "symbol":
      return v.toString();
    case "function":
      return `[Function: ${v.name || "anonymous"}]`;
    case "object": {
      if (v === null) return "null";
      if (v instanceof Error) {
        const stack = v.stack;
        return typeof stack === "string" && stack.includes(String(v.message)) ? stack : String(v) + (typeof stack === "string" ? "\n" + stack : "");
      }
      try {
        const seen: object[] = [];
        const s = JSON.stringify(v, (_k, x: unknown) => {
          if (typeof x === "bigint") return String(x) + "n";
          if (typeof x === "function") return `[Function: ${(x as { name?: string }).name || "anonymous"}]`;
          if (typeof x === "symbol") return x.toString();
          if (x !== null && typeof x === "object") {
            if (seen.includes(x)) return "[Circular]";
            seen.push(x);
            if (x instanceof Map) return { "[Map]": Array.from(x.entries()) };
            if (x instanceof Set) return { "[Set]": Array.from(x.values()) };
          }
          return x;
        }) as string | undefined;
        // eslint-disable-next-line @typescript-eslint/no-base-to-string -- an object whose toJSON gives nothing shows as String() does in the isolate
        return s === undefined ? String(v) : s;
      } catch {
        return Object.prototype.toString.call(v);
      }
    }
    default:
      return String(v);
  }
}

/** The arguments of one console / ctx.log call as one line. */
export function formatArgs(args: readonly unknown[]): string {
  if (args.length === 1 && typeof args[0] === "string") return args[0];
  let out = "";
  for (let i = 0; i < args.length; i++) out += (i === 0 ? "" : " ") + formatValue(args[i]);
  return out;
}

/** A thrown value as the error message names it ("Error: boom"). */
export function describeThrown(err: unknown): string {
  if (err instanceof Error) return String(err);
  return formatValue(err);
}

function logStrings(logs: readonly LogLine[]): string[] {
  return logs.map((l) => `[${l.level}] ${l.message}`);
}

function errorResult(logs: LogLine[], status: number, code: string, message: string, stack: string | undefined, outcome: Outcome): InvokeResult {
  const err: Record<string, unknown> = { code, message, details: [] };
  if (stack !== undefined) err.stack = stack;
  err.logs = logStrings(logs);
  return {
    outcome,
    status,
    headers: { "content-type": JSON_TYPE },
    body: JSON.stringify({ error: err }),
    logs,
    error: stack === undefined ? message : stack,
    errorCode: code,
  };
}

/** The handler threw or its promise rejected (500 KUMO_E_FUNCTION_ERROR). */
export function thrownResult(err: unknown, logs: LogLine[]): InvokeResult {
  const stack = err instanceof Error && typeof err.stack === "string" ? err.stack : undefined;
  return errorResult(logs, 500, "KUMO_E_FUNCTION_ERROR", "function threw: " + describeThrown(err), stack, "function_error");
}

/** The handler returned something that is not an HTTP response (502 KUMO_E_BAD_RESPONSE). */
export function badResponseResult(reason: string, logs: LogLine[]): InvokeResult {
  return errorResult(
    logs,
    502,
    "KUMO_E_BAD_RESPONSE",
    "function returned a value that cannot be sent as an HTTP response: " +
      reason +
      ": return a plain object, array, string, number or boolean (sent as JSON), undefined (204), or { status, headers, body }",
    undefined,
    "function_error",
  );
}

function toJson(v: unknown): { json: string } | { error: string } {
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch (e) {
    return { error: describeThrown(e) };
  }
  if (s === undefined) return { error: `a ${typeof v} has no JSON form` };
  return { json: s };
}

function isResponseShape(v: unknown): v is { status: unknown; headers?: unknown; body?: unknown } {
  if (v === null || typeof v !== "object" || Array.isArray(v) || typeof (v as { status?: unknown }).status !== "number") return false;
  for (const k in v) if (k !== "status" && k !== "headers" && k !== "body") return false;
  return true;
}

/** The response for a handler's return value: undefined → 204, `{ status, headers?, body? }` → that, anything else → 200 JSON. */
export function responseFor(v: unknown, logs: LogLine[]): InvokeResult {
  if (v === undefined) return { outcome: "success", status: 204, headers: {}, body: "", logs };
  if (isResponseShape(v)) {
    const status = v.status as number;
    if (!Number.isInteger(status) || status < 200 || status > 599) return badResponseResult(`status ${String(status)} is not an integer from 200 to 599`, logs);
    const headers: Record<string, string> = {};
    let hasType = false;
    if (v.headers !== undefined && v.headers !== null) {
      if (typeof v.headers !== "object") return badResponseResult("headers must be an object of strings", logs);
      let src = v.headers as Record<string, unknown>;
      if (v.headers instanceof Headers) {
        const fromHeaders: Record<string, string> = {};
        v.headers.forEach((value, key) => (fromHeaders[key] = value));
        src = fromHeaders;
      }
      for (const k of Object.keys(src)) {
        const hv = src[k];
        if (typeof hv !== "string" && typeof hv !== "number" && typeof hv !== "boolean") return badResponseResult(`header "${k}" is a ${typeof hv}, not a string`, logs);
        headers[k] = String(hv);
        if (k.toLowerCase() === "content-type") hasType = true;
      }
    }
    let body = "";
    if (typeof v.body === "string") body = v.body;
    else if (v.body !== undefined && v.body !== null) {
      const j = toJson(v.body);
      if ("error" in j) return badResponseResult("body: " + j.error, logs);
      body = j.json;
      if (!hasType) headers["content-type"] = JSON_TYPE;
    }
    return { outcome: "success", status, headers, body, logs };
  }
  const j = toJson(v);
  if ("error" in j) return badResponseResult(j.error, logs);
  return { outcome: "success", status: 200, headers: { "content-type": JSON_TYPE }, body: j.json, logs };
}

/** A failed invocation's result: the catalogue error as the JSON body, with the function's logs. */
export function failureResult(outcome: Outcome, status: number, errorCode: string, message: string, logs: LogLine[]): InvokeResult {
  const body = JSON.stringify({ error: { code: errorCode, message, details: [], logs: logStrings(logs) } });
  return { outcome, status, headers: { "content-type": JSON_TYPE }, body, logs, error: message, errorCode };
}

/** The function ran past its deadline (504). */
export function timeoutResult(timeoutMs: number, logs: LogLine[]): InvokeResult {
  return failureResult(
    "timeout",
    504,
    "KUMO_E_FUNCTION_TIMEOUT",
    `function did not finish within its timeout of ${timeoutMs} ms: it was stopped and its instance replaced; ` +
      "raise --timeout (limits.timeoutMs) or make the handler finish sooner (await every promise, avoid endless loops)",
    logs,
  );
}

/** The function exhausted its heap (500). */
export function memoryResult(memoryMb: number, logs: LogLine[]): InvokeResult {
  return failureResult(
    "function_error",
    500,
    "KUMO_E_FUNCTION_MEMORY",
    `function exceeded its memory limit of ${memoryMb} MB: its instance was disposed; ` + "raise --memory (limits.memoryMb) or keep less data in memory at once",
    logs,
  );
}

/** The request was in flight on (or sent to) an instance that went away (503, retryable). */
export function replacedResult(): InvokeResult {
  return failureResult(
    "platform_error",
    503,
    "KUMO_E_UNAVAILABLE",
    "the function instance was replaced while this request was running (another request on it timed out or ran out of memory, " +
      "or it was shut down): retry the request",
    [],
  );
}

/** The function's process ended while the request ran (process.exit, an uncaught error in a callback). */
export function exitedResult(how: string, stderrTail: string, logs: LogLine[]): InvokeResult {
  const tail = stderrTail.trim();
  return failureResult(
    "function_error",
    500,
    "KUMO_E_FUNCTION_ERROR",
    `function's process ${how} while this request was running (process.exit() or an uncaught error outside the handler's promise)` +
      (tail === "" ? "" : `; its last output:\n${tail}`),
    logs,
  );
}

/** The platform could not pass the request to the function or read its answer (500). */
export function internalResult(reason: string): InvokeResult {
  return failureResult("platform_error", 500, "KUMO_E_INTERNAL", `internal error: could not run the function: ${reason}`, []);
}

/** A result read off the wire, checked before it is trusted. */
export function checkedResult(value: unknown): InvokeResult | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const r = value as Partial<InvokeResult>;
  if (typeof r.status !== "number" || typeof r.body !== "string" || typeof r.headers !== "object" || r.headers === null) return undefined;
  if (!Array.isArray(r.logs) || typeof r.outcome !== "string") return undefined;
  return r as InvokeResult;
}
