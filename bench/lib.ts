// Shared pieces of the benchmarks: starting servers, deploying over the api, running wrk and
// reading its numbers. Benchmarks print markdown tables and write JSON under bench/results/.

import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { packSource } from "../services/builder/index.ts";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const run = promisify(execFile);

/** A child process that printed a URL or port. */
export interface Child {
  url: string;
  proc: ChildProcess;
  stop: () => Promise<void>;
}

/** Starts a process and waits for `pattern` on its output; the first group builds the URL. */
export function startChild(cmd: string, args: string[], pattern: RegExp, toUrl: (m: string) => string, env: Record<string, string> = {}): Promise<Child> {
  return new Promise((resolveChild, reject) => {
    const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let out = "";
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m?.[1] !== undefined) {
        proc.stdout.off("data", onData);
        proc.stderr.off("data", onData);
        resolveChild({
          url: toUrl(m[1]),
          proc,
          stop: () =>
            new Promise<void>((r) => {
              if (proc.exitCode !== null || proc.signalCode !== null) return r();
              const kill = setTimeout(() => proc.kill("SIGKILL"), 15_000);
              proc.once("exit", () => {
                clearTimeout(kill);
                r();
              });
              proc.kill("SIGTERM");
            }),
        });
      }
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.once("exit", (code) => reject(new Error(`${cmd} exited with ${String(code)}:\n${out}`)));
  });
}

/** Starts `kumo server` on a free port with a fresh data dir. */
export async function startKumo(env: Record<string, string> = {}): Promise<Child> {
  const dataDir = await mkdtemp(join(tmpdir(), "kumo-bench-"));
  const child = await startChild(join(repoRoot, "bin/kumo"), ["server", "--port", "0", "--data-dir", dataDir], /(http:\/\/127\.0\.0\.1:\d+)/, (u) => u, env);
  return {
    ...child,
    stop: async () => {
      await child.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Starts the raw node:http hello server. */
export function startRaw(): Promise<Child> {
  return startChild(join(repoRoot, "node_modules/.bin/node"), [join(repoRoot, "bench/raw-hello.ts")], /^(\d+)\s*$/m, (p) => `http://127.0.0.1:${p}`);
}

/** Deploys a folder over the api (what `kumo deploy` does) and resolves once it is Ready. */
export async function deploy(server: string, name: string, dir: string, spec: Record<string, unknown> = {}): Promise<void> {
  const base = `${server}/apis/kumo.dev/v1/namespaces/default`;
  const packed = await packSource(dir);
  const up = await fetch(`${base}/sources`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: Buffer.from(packed.bytes) });
  if (!up.ok) throw new Error(`upload failed: ${await up.text()}`);
  const { digest } = (await up.json()) as { digest: string };
  const body = JSON.stringify({ metadata: { name }, spec: { source: { digest }, ...spec } });
  const created = await fetch(`${base}/functions`, { method: "POST", headers: { "content-type": "application/json" }, body });
  if (!created.ok) throw new Error(`create failed: ${await created.text()}`);
  for (;;) {
    const fn = (await (await fetch(`${base}/functions/${name}`)).json()) as { metadata: { generation: number }; status: { observedGeneration?: number; conditions?: { type: string; status: string; message: string }[] } };
    const ready = fn.status.conditions?.find((c) => c.type === "Ready");
    if (fn.status.observedGeneration === fn.metadata.generation && ready?.status === "True") return;
    if (fn.status.observedGeneration === fn.metadata.generation && ready?.status === "False") throw new Error(`deploy failed: ${ready.message}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** wrk's numbers for one run. */
export interface WrkResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  requests: number;
  errors: number;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (m === null) return NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "s" ? n * 1000 : n;
}

/** Runs wrk with --latency and parses req/s and percentiles. */
export async function wrk(url: string, connections: number, seconds: number, threads = 1): Promise<WrkResult> {
  const { stdout } = await run("wrk", [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, "--latency", url], { maxBuffer: 1 << 20 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p50 = /\s50%\s+(\S+)/.exec(stdout)?.[1] ?? "";
  const p99 = /\s99%\s+(\S+)/.exec(stdout)?.[1] ?? "";
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const errors = non2xx + (sockErr === null ? 0 : sockErr.slice(1).reduce((a, b) => a + Number(b), 0));
  return { rps, p50ms: toMs(p50), p99ms: toMs(p99), requests, errors };
}

/** Percentile of a sorted-on-demand sample, ms. */
export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

/** Writes a result file under bench/results/. */
export async function saveResult(name: string, data: unknown): Promise<string> {
  const dir = join(repoRoot, "bench/results");
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify(data, null, 2) + "\n");
  return file;
}

/** Machine facts printed with every result. */
export function machine(): string {
  return `node ${process.version}, ${process.platform}/${process.arch}`;
}
