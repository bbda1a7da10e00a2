// Event invocations: the dispatcher runs functions through the same route table and revision
// pools as HTTP requests, so events and requests share instances, limits and autoscaling.

import { randomUUID } from "node:crypto";
import { KumoError, type InvocationRecord, type KumoCloudEvent, type Outcome } from "../model/index.ts";
import type { InvocationLog } from "../store/index.ts";
import type { RouteTable } from "./routes.ts";

/** The result of delivering one event to a function. */
export interface EventInvocationResult {
  outcome: Outcome;
  status: number;
  error?: string;
  invocationId: string;
}

/** Invokes functions with CloudEvents and records each invocation with its trigger and event id. */
export function createEventInvoker(routes: RouteTable, invocations: InvocationLog) {
  return {
    async invokeEvent(namespace: string, fn: string, event: KumoCloudEvent, meta: { trigger: string; attempt: number; timeoutMs?: number }): Promise<EventInvocationResult> {
      const id = randomUUID();
      const route = routes.get(`${namespace}/${fn}`);
      if (route === undefined) {
        throw new KumoError("KUMO_E_FUNCTION_NOT_FOUND", `function ${namespace}/${fn} does not exist or has no ready revision`);
      }
      const target = route.pick();
      const start = Date.now();
      const t0 = performance.now();
      let outcome: Outcome;
      let status: number;
      let error: string | undefined;
      let logs: InvocationRecord["logs"] = [];
      let coldStart = false;
      try {
        const inv = await target.pool.invoke({ requestId: id, kind: "event", input: event, deadline: start + (meta.timeoutMs ?? target.timeoutMs) });
        ({ outcome, status, logs } = inv.result);
        error = inv.result.error;
        coldStart = inv.coldStart;
      } catch (err) {
        const e = err instanceof KumoError ? err : new KumoError("KUMO_E_INTERNAL", String(err));
        outcome = e.code === "KUMO_E_LOAD_FAILED" ? "function_error" : "platform_error";
        status = e.status;
        error = e.message;
      }
      const durationMs = performance.now() - t0;
      target.metrics.invocation(outcome, durationMs / 1000);
      const record: InvocationRecord = {
        id,
        namespace,
        function: fn,
        revision: target.revision,
        trigger: meta.trigger,
        eventId: event.id,
        start: new Date(start).toISOString(),
        durationMs,
        outcome,
        status,
        coldStart,
        logs,
      };
      if (error !== undefined) record.error = meta.attempt > 1 ? `attempt ${meta.attempt}: ${error}` : error;
      invocations.append(record);
      const result: EventInvocationResult = { outcome, status, invocationId: id };
      if (error !== undefined) result.error = error;
      return result;
    },
  };
}
