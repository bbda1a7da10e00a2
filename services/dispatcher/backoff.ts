// Retry policy of a trigger's deliveries: which outcomes are retried and how long to wait before
// each retry. Pure functions, so the schedule is tested without timers.

import type { DeliverySpec, Outcome } from "../model/index.ts";

/**
 * Outcomes retried: a function error (the function threw, often because something it calls is
 * down), a timeout and a platform error (no instance could start, queue full). Success is final.
 */
export function isRetryable(outcome: Outcome): boolean {
  return outcome !== "success";
}

/**
 * The wait before retry number `retry` (1 for the first retry): exponential doubles
 * backoffDelayMs each time, linear adds it; both are capped at maxBackoffMs.
 */
export function backoffDelay(delivery: Pick<DeliverySpec, "backoff" | "backoffDelayMs" | "maxBackoffMs">, retry: number): number {
  const n = Math.max(1, Math.floor(retry));
  const raw = delivery.backoff === "exponential" ? delivery.backoffDelayMs * 2 ** (n - 1) : delivery.backoffDelayMs * n;
  return Math.min(raw, delivery.maxBackoffMs);
}

/** Every wait of a delivery that fails each attempt, in order (one per retry). */
export function retrySchedule(delivery: Pick<DeliverySpec, "retries" | "backoff" | "backoffDelayMs" | "maxBackoffMs">): number[] {
  return Array.from({ length: delivery.retries }, (_, i) => backoffDelay(delivery, i + 1));
}
