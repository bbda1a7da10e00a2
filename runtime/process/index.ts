// The process instance backend: every instance of a revision is a child Node process of
// `kumo server` running the worker runtime (runtime/pod), with full Node APIs.

export { createProcessBackend, type ProcessBackendOptions } from "./backend.ts";
