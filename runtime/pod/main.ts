// Entrypoint of a function instance's process (a worker of `kumo server`, or the pod image): reads
// KUMO_POD_*, loads the bundle, serves it and prints one ready line on stdout. Wiring only.

import { flushCompileCache, getCompileCacheDir } from "node:module";
import { fdLogSink, loadPodConfig, startPodServer, REPLACED_EXIT_CODE, type PodServer } from "./index.ts";

let server: PodServer | undefined;

// Registered before the ready line: whoever reads that line may stop us at once.
process.once("SIGTERM", () => {
  if (server === undefined) process.exit(0);
  void server.close().then(() => process.exit(0));
});

try {
  const config = loadPodConfig(process.env);
  server = await startPodServer({
    spec: config.spec,
    ...(config.socketPath === undefined ? { port: config.port, host: config.host } : { socketPath: config.socketPath }),
    ...(config.logFd === undefined ? {} : { logSink: fdLogSink(config.logFd) }),
    onReplaced: () => process.exit(REPLACED_EXIT_CODE),
  });
} catch (err) {
  process.stdout.write(JSON.stringify({ ready: false, error: err instanceof Error ? err.message : String(err) }) + "\n");
  process.exit(1);
}
process.stdout.write(server.readyLine + "\n");
// Node writes its compile cache (NODE_COMPILE_CACHE: this runtime's stripped TypeScript) only at
// a clean exit, and workers usually end by SIGKILL: write it now so the next start skips the work.
if (getCompileCacheDir() !== undefined) flushCompileCache();
