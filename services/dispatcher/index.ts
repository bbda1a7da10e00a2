// The dispatcher module: delivers events from the bus to the functions of matching Triggers
// (retries, concurrency, ordering, dead letters), plus the dead-letter topic's list and replay.
export { Dispatcher, DISPATCHER_GROUP } from "./dispatcher.ts";
export type { DispatcherLog, DispatcherOptions } from "./dispatcher.ts";
export type { EventInvocationResult, EventInvoker } from "./invoker.ts";
export { TriggerIndex, matches } from "./filter.ts";
export type { Filtered } from "./filter.ts";
export { backoffDelay, isRetryable, retrySchedule } from "./backoff.ts";
export { PartitionProgress } from "./progress.ts";
export { createDispatcherMetrics } from "./metrics.ts";
export type { DispatcherMetrics } from "./metrics.ts";
export {
  createBusSink,
  deadLetterRecord,
  ensureEventTopics,
  getDeadLetter,
  listDeadLetters,
  parseDeadLetterRecord,
  partitionKeyOf,
  replayDeadLetter,
} from "./dead-letters.ts";
export type { DeadLetterEntry, ListDeadLettersOptions, TopicOptions } from "./dead-letters.ts";
