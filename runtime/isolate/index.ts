// The isolate runtime: function instances as V8 isolates inside the platform process, with the
// web globals of the runtime contract. Requires node to run with --no-node-snapshot.
export { createIsolateBackend } from "./backend.ts";
export type { IsolateBackendOptions } from "./backend.ts";
export type { Dispatch, DispatchListener } from "./dispatch.ts";
