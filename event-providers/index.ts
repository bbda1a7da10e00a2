// Event providers: the EventProvider interface and the providers that turn HTTP requests and
// cron schedules (and, in event-providers/openstack, RabbitMQ notifications) into CloudEvents.
export type { EventProvider, EventSink, ProviderHealth } from "./provider.ts";
export * from "./http/index.ts";
export * from "./cron/index.ts";
