// Composition roots: `kumo server` (everything in one process, the embedded default).
export { startServer, type RunningServer } from "./server.ts";
export { loadServerConfig, isLoopback, type ServerConfig, type ServerOverrides } from "./config.ts";
