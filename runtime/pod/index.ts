// The worker runtime: the HTTP server a function instance runs in its own Node process (a worker
// of `kumo server`, or a pod), its configuration, and the invocation results it shares with the
// process backend that drives it.

import { fileURLToPath } from "node:url";

export { startPodServer, LOG_TAG_HEADER, REPLACED_EXIT_CODE, type PodServer, type PodServerOptions } from "./server.ts";
export { loadPodConfig, POD_ENV_PREFIX, type PodConfig } from "./config.ts";
export { fdLogSink, timerMs, type LogSink, type PodSpec } from "./function.ts";
export { checkedResult, exitedResult, internalResult, memoryResult, replacedResult, timeoutResult } from "../results/index.ts";

/** Path of the entrypoint a worker process runs (runtime/pod/main.ts). */
export const podMainPath: string = fileURLToPath(new URL("./main.ts", import.meta.url));
