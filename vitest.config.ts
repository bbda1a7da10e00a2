import { defineConfig } from "vitest/config";

// Tests run on the project's Node 24 (see Makefile); isolated-vm needs --no-node-snapshot in
// every worker process, so tests run in forks with that flag.
export default defineConfig({
  test: {
    include: ["services/**/*.test.ts", "runtime/**/*.test.ts", "event-providers/**/*.test.ts", "test/**/*.test.ts"],
    pool: "forks",
    execArgv: ["--no-node-snapshot"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default"],
  },
});
