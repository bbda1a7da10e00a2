// Invocation results the host builds itself, for the failures the isolate cannot report: timeouts,
// memory exhaustion, and requests cut off when their instance goes away.

import type { InvokeResult, LogLine } from "../../services/model/index.ts";
import { failureResult } from "../results/index.ts";

export { checkedResult, internalResult, memoryResult, replacedResult, timeoutResult } from "../results/index.ts";

/**
 * The function ran synchronously on the server's thread past the fast path's cap (503, retryable):
 * it was stopped, not re-run (it may have had side effects), and its revision moved to threads.
 */
export function fastPathResult(capMs: number, logs: LogLine[]): InvokeResult {
  return failureResult(
    "platform_error",
    503,
    "KUMO_E_UNAVAILABLE",
    `the function ran synchronously for more than ${capMs} ms on the fast path; its revision now runs on isolated-vm's threads: retry the request`,
    logs,
  );
}
