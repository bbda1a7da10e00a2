// The serving path: gateway (node:http hot path), route table, revision pools and metrics.
export { createGateway, writeError, type GatewayOptions } from "./gateway.ts";
export { RouteTable, type Route, type RevisionTarget, type GatewayPoolDefaults } from "./routes.ts";
export { RevisionPool, type PoolOptions, type PoolStats, type PoolInvocation, type PoolEvents } from "./pool.ts";
export { createGatewayMetrics, revisionMetrics, RevisionMetrics, type GatewayMetrics } from "./metrics.ts";
export { createEventInvoker, type EventInvocationResult } from "./events.ts";
