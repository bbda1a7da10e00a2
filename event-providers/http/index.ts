// The HTTP event provider: CloudEvents over `POST /events`.
export { DEFAULT_MAX_EVENT_BODY_BYTES, HttpEventProvider, createHttpEventHandler, eventPartitionKey, parseHttpEvents } from "./provider.ts";
export type { HttpEventOptions } from "./provider.ts";
