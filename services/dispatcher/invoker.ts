// The port through which the dispatcher runs functions. The gateway implements it over the same
// revision pools that serve HTTP, so event and HTTP invocations share instances and scaling.

import type { KumoCloudEvent } from "../model/index.ts";

/** What one event invocation attempt came to. */
export interface EventInvocationResult {
  outcome: "success" | "function_error" | "timeout" | "platform_error";
  status: number;
  error?: string;
  invocationId: string;
}

/** How the dispatcher runs a function with an event. */
export interface EventInvoker {
  /**
   * Invokes the function's current revision with a CloudEvent; records an invocation with trigger
   * and eventId. Rejects with KumoError KUMO_E_FUNCTION_NOT_FOUND when the function does not
   * exist (the dispatcher dead-letters at once); any other rejection counts as a platform_error.
   */
  invokeEvent(
    namespace: string,
    fn: string,
    event: KumoCloudEvent,
    meta: { trigger: string; attempt: number; timeoutMs?: number },
  ): Promise<EventInvocationResult>;
}
