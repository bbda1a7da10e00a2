// Test support: runs the real `kumo` CLI (bin/kumo) and `kumo server` as child processes, the
// way a user does. Test-only; nothing under services/ or runtime/ imports it.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The kumo command. */
export const kumoBin = join(repoRoot, "bin/kumo");

/** Result of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `kumo <args>` to completion. */
export function runKumo(args: string[], env: Record<string, string> = {}, input?: string): Promise<CliResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(kumoBin, args, { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolveRun({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

/** A `kumo server` child process. */
export interface ServerProcess {
  url: string;
  dataDir: string;
  child: ChildProcess;
  output(): string;
  /** SIGTERM and wait. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

/** A fresh temporary directory. */
export function tempDir(prefix = "kumo-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Starts `kumo server --port 0` and resolves once it prints its URL and answers /readyz. */
export async function startKumoServer(options: { dataDir?: string; env?: Record<string, string>; args?: string[] } = {}): Promise<ServerProcess> {
  const ownDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await tempDir("kumo-data-"));
  const child = spawn(kumoBin, ["server", "--port", "0", "--data-dir", dataDir, ...(options.args ?? [])], {
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`kumo server did not print its URL within 30 s:\n${out}`)), 30_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolveUrl(m[1]!);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`kumo server exited with ${String(code)} before it was ready:\n${out}`));
    });
  });
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return {
    url,
    dataDir,
    child,
    output: () => out,
    async stop() {
      child.kill("SIGTERM");
      const code = await exited;
      if (ownDataDir) await rm(dataDir, { recursive: true, force: true });
      return code;
    },
    async kill() {
      child.kill("SIGKILL");
      await exited;
    },
  };
}
