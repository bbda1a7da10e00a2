// Invocation results the host builds itself, for the failures the isolate cannot report: timeouts,
// memory exhaustion, and requests cut off when their instance goes away.

import type { InvokeResult, LogLine } from "../../services/model/index.ts";

const JSON_HEADERS = { "content-type": "application/json" } as const;

function failure(outcome: InvokeResult["outcome"], status: number, errorCode: string, message: string, logs: LogLine[]): InvokeResult {
  const body = JSON.stringify({
    error: { code: errorCode, message, details: [], logs: logs.map((l) => `[${l.level}] ${l.message}`) },
  });
  return { outcome, status, headers: { ...JSON_HEADERS }, body, logs, error: message, errorCode };
}

/** The function ran past its deadline (504). */
export function timeoutResult(timeoutMs: number, logs: LogLine[]): InvokeResult {
  return failure(
    "timeout",
    504,
    "KUMO_E_FUNCTION_TIMEOUT",
    `function did not finish within its timeout of ${timeoutMs} ms: it was stopped and its instance replaced; ` +
      "raise --timeout (limits.timeoutMs) or make the handler finish sooner (await every promise, avoid endless loops)",
    logs,
  );
}

/** The function exceeded its isolate's memory limit (500). */
export function memoryResult(memoryMb: number, logs: LogLine[]): InvokeResult {
  return failure(
    "function_error",
    500,
    "KUMO_E_FUNCTION_MEMORY",
    `function exceeded its memory limit of ${memoryMb} MB: its instance was disposed; ` +
      "raise --memory (limits.memoryMb) or keep less data in memory at once",
    logs,
  );
}

/** The request was in flight on (or sent to) an instance that was disposed (503, retryable). */
export function replacedResult(): InvokeResult {
  return failure(
    "platform_error",
    503,
    "KUMO_E_UNAVAILABLE",
    "the function instance was replaced while this request was running (another request on it timed out or ran out of memory, " +
      "or it was shut down): retry the request",
    [],
  );
}

/**
 * The function ran synchronously on the server's thread past the fast path's cap (503, retryable):
 * it was stopped, not re-run (it may have had side effects), and its revision moved to threads.
 */
export function fastPathResult(capMs: number, logs: LogLine[]): InvokeResult {
  return failure(
    "platform_error",
    503,
    "KUMO_E_UNAVAILABLE",
    `the function ran synchronously for more than ${capMs} ms on the fast path; its revision now runs on isolated-vm's threads: retry the request`,
    logs,
  );
}

/** The platform failed to pass the request into the isolate (500). */
export function internalResult(reason: string): InvokeResult {
  return failure("platform_error", 500, "KUMO_E_INTERNAL", `internal error: could not run the function: ${reason}`, []);
}

/** A result object copied out of the isolate, checked before it is trusted. */
export function checkedResult(value: unknown): InvokeResult | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const r = value as Partial<InvokeResult>;
  if (typeof r.status !== "number" || typeof r.body !== "string" || typeof r.headers !== "object" || r.headers === null) return undefined;
  if (!Array.isArray(r.logs) || typeof r.outcome !== "string") return undefined;
  return r as InvokeResult;
}
