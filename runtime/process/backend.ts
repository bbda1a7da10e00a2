// The process instance backend: each instance is a child Node process running the worker runtime
// (runtime/pod/main.ts, the pod image's entrypoint) on a unix socket, with its heap capped at the
// revision's memoryMb. The host enforces deadlines (SIGKILL), and reads how the child died (heap
// exhaustion, exit) to answer the requests that were in flight on it.

import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, stat, unlink, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KumoError } from "../../services/model/index.ts";
import type { Instance, InstanceBackend, InvokeRequest, InvokeResult, LoadSpec, LogLine } from "../../services/model/index.ts";
import {
  checkedResult,
  exitedResult,
  internalResult,
  LOG_TAG_HEADER,
  memoryResult,
  podMainPath,
  REPLACED_EXIT_CODE,
  replacedResult,
  timeoutResult,
  timerMs,
} from "../pod/index.ts";

/** How the process backend starts its children. */
export interface ProcessBackendOptions {
  /** Node binary for the children. Default: the one running this process. */
  nodePath?: string;
  /** Directory for the instances' unix sockets (and bundles written from LoadSpec.code). Default: a fresh temp dir. */
  socketDir?: string;
  /** How long a child may take to start Node and listen, on top of the revision's timeoutMs for its top-level code. Default 10 s. */
  startTimeoutMs?: number;
  /** Node's compile cache for the children (it skips re-stripping runtime/pod's TypeScript); false turns it off. Default: <tmpdir>/kumo-node-compile-cache-<uid>. */
  compileCacheDir?: string | false;
}

// The child answers its own timeouts (with the logs so far); the host kills it this much later if
// it could not (a synchronous loop keeps its timers from firing).
const KILL_GRACE_MS = 100;
// After a failed request, how long to wait for the child's exit to explain it.
const EXIT_EXPLAINS_MS = 1000;
// Kept from the child's stderr to explain a crash or a load failure.
const STDERR_TAIL_CHARS = 16_384;
const SHOWN_STDERR_CHARS = 2000;
// Variables of the server's own environment a function may see; nothing else leaks (tokens, KUMO_*).
const INHERITED_ENV = ["PATH", "HOME", "TZ", "LANG"] as const;
const MAX_SOCKET_PATH = 107;
const HEAP_EXHAUSTED = /JavaScript heap out of memory|Reached heap limit/;

interface Pending {
  readonly deadline: number;
  /** The lines the child streamed so far: what is left when it cannot answer (a loop, a crash). */
  readonly logs: LogLine[];
  readonly resolve: (r: InvokeResult) => void;
  readonly timer: NodeJS.Timeout;
}

type Death = "killed" | "memory" | "replaced" | "exited";

function tail(s: string, n: number): string {
  return s.length <= n ? s : "…" + s.slice(s.length - n);
}

/** The compile cache directory, if it is ours alone: code cache another user could write must not be loaded. */
async function privateDir(path: string): Promise<string | undefined> {
  try {
    await mkdir(path, { recursive: true, mode: 0o700 });
    const st = await stat(path);
    if (!st.isDirectory() || (process.getuid !== undefined && st.uid !== process.getuid()) || (st.mode & 0o022) !== 0) return undefined;
    return path;
  } catch {
    return undefined;
  }
}

/** One child process serving one revision. */
class ProcessInstance implements Instance {
  readonly id: string;
  readonly revision: string;
  private readonly spec: LoadSpec;
  private readonly name: string;
  private readonly child: ChildProcess;
  private readonly socketPath: string;
  private readonly agent = new Agent({ keepAlive: true });
  private readonly pending = new Map<number, Pending>();
  private readonly onGone: () => void;
  /** Resolves once the child is gone and its stderr read (so the reason is known). */
  readonly exited: Promise<void>;
  private markExited: () => void = () => undefined;
  private seq = 0;
  private alive = true;
  private buriedAlready = false;
  private killedByHost = false;
  private stderr = "";
  private how = "";

  constructor(id: string, spec: LoadSpec, child: ChildProcess, socketPath: string, onGone: () => void) {
    this.id = id;
    this.revision = spec.revision;
    this.spec = spec;
    this.name = `${spec.namespace}/${spec.function} (revision ${spec.revision})`;
    this.child = child;
    this.socketPath = socketPath;
    this.onGone = onGone;
    this.exited = new Promise<void>((resolve) => {
      this.markExited = resolve;
    });
    const stderrClosed = new Promise<void>((resolve) => {
      if (child.stderr === null) return resolve();
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (d: string) => {
        this.stderr = tail(this.stderr + d, STDERR_TAIL_CHARS);
      });
      child.stderr.once("close", () => resolve());
    });
    // fd 3 carries each log line as the child writes it (fdLogSink), tagged with the request seq.
    const logStream = child.stdio[3];
    const logsClosed = new Promise<void>((resolve) => {
      if (logStream === null || logStream === undefined || !("setEncoding" in logStream)) return resolve();
      let partial = "";
      logStream.setEncoding("utf8");
      logStream.on("data", (d: string) => {
        partial += d;
        let nl: number;
        while ((nl = partial.indexOf("\n")) >= 0) {
          this.streamed(partial.slice(0, nl));
          partial = partial.slice(nl + 1);
        }
      });
      logStream.once("close", () => resolve());
    });
    const gone = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
      if (!this.alive) return;
      this.alive = false;
      this.how =
        spawnError !== undefined ? `could not be started (${spawnError.message})` : signal === null ? `exited with code ${String(code)}` : `was killed by ${signal}`;
      // The reason (the heap message, a stack) may still sit in the stderr pipe; a grandchild
      // holding the pipe open must not keep the requests waiting.
      const wait = setTimeout(() => this.buried(code, signal), 200);
      void Promise.all([stderrClosed, logsClosed]).then(() => {
        clearTimeout(wait);
        this.buried(code, signal);
      });
    };
    child.once("exit", (code, signal) => gone(code, signal));
    child.once("error", (err) => {
      if (child.pid === undefined) gone(null, null, err);
    });
  }

  get healthy(): boolean {
    return this.alive && !this.killedByHost;
  }

  /** Waits for the child's ready line; rejects with KUMO_E_LOAD_FAILED (its reported error, its exit, or the start timeout). */
  ready(startupMs: number): Promise<void> {
    const child = this.child;
    const spec = this.spec;
    const failed = (problem: string, fix: string): KumoError =>
      new KumoError("KUMO_E_LOAD_FAILED", `function ${spec.namespace}/${spec.function} revision ${spec.revision} could not be loaded: ${problem}: ${fix}`);
    return new Promise<void>((resolve, reject) => {
      let out = "";
      let done = false;
      const finish = (err?: KumoError): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        // Later stdout (console.table and such) is read and dropped, so the pipe never fills.
        child.stdout?.resume();
        if (err === undefined) resolve();
        else reject(err);
      };
      const onData = (d: string): void => {
        out += d;
        let nl: number;
        while ((nl = out.indexOf("\n")) >= 0) {
          const line = out.slice(0, nl);
          out = out.slice(nl + 1);
          if (!line.startsWith('{"ready":')) continue;
          let msg: { ready?: unknown; error?: unknown };
          try {
            msg = JSON.parse(line) as { ready?: unknown; error?: unknown };
          } catch {
            continue;
          }
          if (msg.ready === true) finish();
          else finish(new KumoError("KUMO_E_LOAD_FAILED", typeof msg.error === "string" ? msg.error : `function ${this.name} could not be loaded`));
          return;
        }
      };
      const timer = setTimeout(
        () =>
          finish(
            failed(
              `its process was not ready within ${startupMs + spec.timeoutMs} ms (its top-level code ran longer than the timeout of ${spec.timeoutMs} ms, or waits forever)`,
              "move slow work out of module scope into the handler",
            ),
          ),
        startupMs + spec.timeoutMs,
      );
      child.stdout?.setEncoding("utf8");
      child.stdout?.on("data", onData);
      void this.exited.then(() => {
        if (HEAP_EXHAUSTED.test(this.stderr)) {
          finish(failed(`its top-level code exceeded the memory limit of ${spec.memoryMb} MB`, "raise --memory (limits.memoryMb) or do less work at load time"));
        } else {
          const output = tail(this.stderr.trim(), SHOWN_STDERR_CHARS);
          finish(failed(`its process ${this.how} before it was ready${output === "" ? "" : `; its output:\n${output}`}`, "fix the code that runs when the module loads (outside the handler)"));
        }
      });
    });
  }

  invoke(req: InvokeRequest): Promise<InvokeResult> {
    if (!this.healthy) return Promise.resolve(replacedResult());
    const seq = ++this.seq;
    return new Promise<InvokeResult>((resolve) => {
      const timer = setTimeout(
        () => {
          this.settle(seq, timeoutResult(this.spec.timeoutMs, logs));
          this.kill();
        },
        timerMs(req.deadline - Date.now() + KILL_GRACE_MS),
      );
      const logs: LogLine[] = [];
      this.pending.set(seq, { deadline: req.deadline, logs, resolve, timer });
      const payload = JSON.stringify(req);
      const outgoing = request(
        {
          agent: this.agent,
          socketPath: this.socketPath,
          path: "/invoke",
          method: "POST",
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload), [LOG_TAG_HEADER]: String(seq) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            let result: InvokeResult | undefined;
            try {
              result = checkedResult(JSON.parse(Buffer.concat(chunks).toString("utf8")));
            } catch {
              result = undefined;
            }
            if (res.statusCode !== 200 || result === undefined) {
              this.settle(seq, internalResult(`the instance answered ${res.statusCode ?? 0} without a result`));
              return;
            }
            this.settle(seq, result);
            // After a timeout the child's handler may still run: the child ends itself, the host makes sure.
            if (result.errorCode === "KUMO_E_FUNCTION_TIMEOUT") this.kill();
          });
          res.on("error", (err) => this.lost(seq, err));
        },
      );
      outgoing.on("error", (err) => this.lost(seq, err));
      outgoing.end(payload);
    });
  }

  /** Kills the child; requests still in flight are answered once it is gone. */
  kill(): void {
    if (!this.alive || this.killedByHost) return;
    this.killedByHost = true;
    this.child.kill("SIGKILL");
  }

  async dispose(): Promise<void> {
    this.kill();
    await this.exited;
  }

  private streamed(text: string): void {
    const tab = text.indexOf("\t");
    const p = this.pending.get(Number(text.slice(0, tab)));
    if (tab < 0 || p === undefined) return;
    try {
      p.logs.push(JSON.parse(text.slice(tab + 1)) as LogLine);
    } catch {
      // A line cut by the child's death: the result says what happened.
    }
  }

  private settle(seq: number, result: InvokeResult): void {
    const p = this.pending.get(seq);
    if (p === undefined) return;
    this.pending.delete(seq);
    clearTimeout(p.timer);
    p.resolve(result);
  }

  private lost(seq: number, err: Error): void {
    if (!this.pending.has(seq)) return;
    // A dying child resets its connections before its exit is seen; the exit says what happened.
    const t = setTimeout(() => this.settle(seq, internalResult(`lost the connection to the instance: ${err.message}`)), EXIT_EXPLAINS_MS);
    void this.exited.then(() => clearTimeout(t));
  }

  private death(code: number | null, signal: NodeJS.Signals | null): Death {
    // V8 aborts the process after printing its heap message.
    if (signal === "SIGABRT" && HEAP_EXHAUSTED.test(this.stderr)) return "memory";
    if (this.killedByHost) return "killed";
    if (code === REPLACED_EXIT_CODE && signal === null) return "replaced";
    return "exited";
  }

  private buried(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.buriedAlready) return;
    this.buriedAlready = true;
    const death = this.death(code, signal);
    const now = Date.now();
    for (const [seq, p] of [...this.pending]) {
      let result: InvokeResult;
      if (death === "memory") result = memoryResult(this.spec.memoryMb, p.logs);
      else if (death === "exited") result = exitedResult(this.how, tail(this.stderr, SHOWN_STDERR_CHARS), p.logs);
      else if (now >= p.deadline) result = timeoutResult(this.spec.timeoutMs, p.logs);
      else result = replacedResult();
      this.settle(seq, result);
    }
    this.agent.destroy();
    this.onGone();
    // The child cannot remove its socket file when it is killed.
    void unlink(this.socketPath)
      .catch(() => undefined)
      .then(() => this.markExited());
  }
}

/** Creates the backend that runs each instance as a child process of this one. */
export function createProcessBackend(options: ProcessBackendOptions = {}): InstanceBackend {
  const nodePath = options.nodePath ?? process.execPath;
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;
  const compileCache =
    options.compileCacheDir === false
      ? Promise.resolve(undefined)
      : privateDir(options.compileCacheDir ?? join(tmpdir(), `kumo-node-compile-cache-${process.getuid?.() ?? "user"}`));
  const instances = new Set<ProcessInstance>();
  let workDir: Promise<string> | undefined;
  let closed = false;

  const dir = (): Promise<string> => {
    workDir ??= options.socketDir !== undefined ? Promise.resolve(options.socketDir) : mkdtemp(join(tmpdir(), "kumo-process-"));
    return workDir;
  };

  async function start(spec: LoadSpec): Promise<Instance> {
    if (closed) throw new KumoError("KUMO_E_UNAVAILABLE", "the process backend is closed: the server is shutting down");
    const base = await dir();
    const key = randomUUID().slice(0, 8);
    const id = `${spec.revision}-${key}`;
    // Unix socket paths are limited to 107 bytes, so files are named by the key, not the revision.
    const socketPath = join(base, `${key}.sock`);
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
      throw new KumoError("KUMO_E_INTERNAL", `internal error: the socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes: set a shorter socketDir for the process backend`);
    }
    let codePath = spec.codePath;
    let wroteCode = false;
    if (codePath === undefined) {
      codePath = join(base, `${key}.mjs`);
      await writeFile(codePath, spec.code);
      wroteCode = true;
    }
    const env: Record<string, string> = {};
    for (const k of INHERITED_ENV) {
      const v = process.env[k];
      if (v !== undefined) env[k] = v;
    }
    Object.assign(env, spec.env);
    const cacheDir = await compileCache;
    if (cacheDir !== undefined) env.NODE_COMPILE_CACHE = cacheDir;
    Object.assign(env, {
      KUMO_POD_CODE_PATH: codePath,
      KUMO_POD_NAMESPACE: spec.namespace,
      KUMO_POD_FUNCTION: spec.function,
      KUMO_POD_REVISION: spec.revision,
      KUMO_POD_TIMEOUT_MS: String(spec.timeoutMs),
      KUMO_POD_MEMORY_MB: String(spec.memoryMb),
      KUMO_POD_ENV_KEYS: Object.keys(spec.env).join(","),
      KUMO_POD_SOCKET: socketPath,
      KUMO_POD_LOG_FD: "3",
    });
    const child = spawn(nodePath, [`--max-old-space-size=${spec.memoryMb}`, "--disable-warning=ExperimentalWarning", podMainPath], {
      env,
      stdio: ["ignore", "pipe", "pipe", "pipe"],
    });
    const instance = new ProcessInstance(id, spec, child, socketPath, () => instances.delete(instance));
    instances.add(instance);
    try {
      await instance.ready(startTimeoutMs);
    } catch (err) {
      await instance.dispose();
      throw err;
    } finally {
      // The module is loaded (or never will be): the file is no longer needed.
      if (wroteCode) await unlink(codePath).catch(() => undefined);
    }
    return instance;
  }

  return {
    runtime: "process",
    start,
    async close(): Promise<void> {
      closed = true;
      await Promise.all([...instances].map((i) => i.dispose()));
      if (workDir !== undefined && options.socketDir === undefined) await rm(await workDir, { recursive: true, force: true });
    },
  };
}
