// Invocation results shared by the runtimes (isolate, process, pod): response mapping and the
// catalogue's failure bodies.
export * from "./results.ts";
