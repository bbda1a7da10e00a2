// A revision's handler loaded into this Node process, and one invocation of it: the request object
// and ctx the handler gets, its log lines (ctx.log and console.*, attributed to the invocation by
// AsyncLocalStorage), the return-value mapping and the deadline. After a timeout the instance is
// "replaced": every request still in flight is answered, and the owner is told to end the process.

import { AsyncLocalStorage } from "node:async_hooks";
import { writeSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { KumoError } from "../../services/model/index.ts";
import type { HttpInput, InvokeRequest, InvokeResult, LogLine } from "../../services/model/index.ts";
import { MAX_LOG_LINES, MAX_LOG_LINE_CHARS, describeThrown, formatArgs, replacedResult, responseFor, thrownResult, timeoutResult, badResponseResult } from "../results/index.ts";

/** What the worker runtime needs to load a revision: the LoadSpec with the bundle on disk or inline. */
export interface PodSpec {
  namespace: string;
  function: string;
  revision: string;
  /** Path of the bundle (an ES module whose default export is the handler). */
  codePath?: string;
  /** The bundle's text, used when there is no codePath. */
  code?: string;
  /** The function's environment, as ctx.env shows it. */
  env: Record<string, string>;
  timeoutMs: number;
  memoryMb: number;
}

type Level = LogLine["level"];

/** Receives each log line as it is written, tagged with the invocation it belongs to (see fdLogSink). */
export type LogSink = (tag: string, line: LogLine) => void;

/**
 * A LogSink that writes `tag<TAB>line-json<LF>` to a file descriptor, synchronously: a handler
 * stuck in a loop or dying of heap exhaustion has already handed over the lines it wrote.
 */
export function fdLogSink(fd: number): LogSink {
  return (tag, line) => {
    const text = `${tag}\t${JSON.stringify(line)}\n`;
    for (let attempt = 0; ; attempt++) {
      try {
        writeSync(fd, text);
        return;
      } catch (err) {
        // A non-blocking pipe the reader has not drained: retry briefly, then drop the copy (the
        // result still carries the line).
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN" || attempt >= 1000) return;
      }
    }
  };
}
type HandlerFn = (input: unknown, ctx: unknown) => unknown;

class Invocation {
  readonly start = Date.now();
  readonly tag: string | undefined;
  readonly sink: LogSink | undefined;
  readonly logs: LogLine[] = [];
  dropped = 0;
  done = false;
  timer: NodeJS.Timeout | undefined = undefined;
  readonly resolve: (r: InvokeResult) => void;

  constructor(resolve: (r: InvokeResult) => void, tag: string | undefined, sink: LogSink | undefined) {
    this.resolve = resolve;
    this.tag = tag;
    this.sink = tag === undefined ? undefined : sink;
  }

  record(level: Level, args: readonly unknown[]): void {
    if (this.done) return;
    if (this.logs.length >= MAX_LOG_LINES) {
      this.dropped++;
      return;
    }
    let message = formatArgs(args);
    if (message.length > MAX_LOG_LINE_CHARS) message = message.slice(0, MAX_LOG_LINE_CHARS) + `… (${message.length - MAX_LOG_LINE_CHARS} characters cut)`;
    const line: LogLine = { t: Date.now() - this.start, level, message };
    this.logs.push(line);
    if (this.sink !== undefined) this.sink(this.tag as string, line);
  }

  takeLogs(): LogLine[] {
    if (this.dropped > 0) this.logs.push({ t: Date.now() - this.start, level: "warn", message: `… ${this.dropped} lines dropped` });
    this.dropped = 0;
    return this.logs;
  }
}

// The invocation whose code is running: console.* lines go to it. Process-wide, like console.
const current = new AsyncLocalStorage<Invocation>();
const inFlight = new Set<Invocation>();
let consoleCaptured = false;

function captureConsole(): void {
  if (consoleCaptured) return;
  consoleCaptured = true;
  const method = (level: Level) =>
    function (...args: unknown[]): void {
      let inv = current.getStore();
      // Nothing is attributed: if exactly one invocation is in flight it must be the author.
      if ((inv === undefined || inv.done) && inFlight.size === 1) inv = inFlight.values().next().value;
      if (inv !== undefined && !inv.done) inv.record(level, args);
      // stdout carries the ready line, so stray lines (load time, several in flight) go to stderr.
      else process.stderr.write(`[${level}] ${formatArgs(args)}\n`);
    };
  console.log = method("info");
  console.info = method("info");
  console.warn = method("warn");
  console.error = method("error");
  console.debug = method("debug");
  console.trace = method("debug");
}

function formDecode(s: string): string {
  const t = s.replace(/\+/g, " ");
  try {
    return decodeURIComponent(t);
  } catch {
    return t.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
}

function parseQuery(raw: string): Record<string, string> {
  const q: Record<string, string> = {};
  for (const part of raw.split("&")) {
    if (part.length === 0) continue;
    const eq = part.indexOf("=");
    const k = formDecode(eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? "" : formDecode(part.slice(eq + 1));
    if (k === "__proto__") Object.defineProperty(q, k, { value: v, writable: true, enumerable: true, configurable: true });
    else q[k] = v;
  }
  return q;
}

/** The HTTP request as a handler sees it (runtime/sdk HttpRequest). */
class HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly rawQuery: string;
  readonly headers: Record<string, string>;
  readonly body: string;

  constructor(input: HttpInput) {
    this.method = input.method;
    this.path = input.path;
    this.rawQuery = input.rawQuery ?? "";
    this.query = parseQuery(this.rawQuery);
    this.headers = input.headers ?? {};
    this.body = input.body ?? "";
  }

  json(): unknown {
    return JSON.parse(this.body);
  }
}

/** A delay setTimeout honours: longer than 2^31-1 ms it would fire at once. */
export function timerMs(ms: number): number {
  return Math.min(2_147_483_647, Math.max(0, Math.ceil(ms)));
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  const t = typeof v;
  return (t === "object" || t === "undefined" ? "an " : "a ") + t;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === "object" || typeof v === "function") && typeof (v as { then?: unknown }).then === "function";
}

/** A loaded handler that takes invocations. */
export class LoadedFunction {
  private readonly spec: PodSpec;
  private readonly handler: HandlerFn;
  private readonly env: Readonly<Record<string, string>>;
  private readonly pending = new Set<Invocation>();
  private readonly logSink: LogSink | undefined;
  private isReplaced = false;
  /** Called once, when a timeout replaced this instance (after the in-flight requests are answered). */
  onReplaced: (() => void) | undefined = undefined;

  constructor(spec: PodSpec, handler: HandlerFn, logSink: LogSink | undefined) {
    this.spec = spec;
    this.handler = handler;
    this.logSink = logSink;
    this.env = Object.freeze({ ...spec.env });
  }

  /** True once a timeout replaced the instance; it answers every request with 503 from then on. */
  get replaced(): boolean {
    return this.isReplaced;
  }

  /** Runs one invocation to its result; never rejects. With a `logTag`, its log lines also go to the log sink. */
  invoke(req: InvokeRequest, logTag?: string): Promise<InvokeResult> {
    if (this.isReplaced) return Promise.resolve(replacedResult());
    return new Promise<InvokeResult>((resolve) => {
      const inv = new Invocation(resolve, logTag, this.logSink);
      this.pending.add(inv);
      inFlight.add(inv);
      inv.timer = setTimeout(() => this.timeOut(inv), timerMs(req.deadline - Date.now()));
      let out: unknown;
      try {
        const arg = req.kind === "http" ? new HttpRequest(req.input as HttpInput) : req.input;
        const log = {
          debug: (...a: unknown[]) => inv.record("debug", a),
          info: (...a: unknown[]) => inv.record("info", a),
          warn: (...a: unknown[]) => inv.record("warn", a),
          error: (...a: unknown[]) => inv.record("error", a),
        };
        const ctx = {
          requestId: req.requestId,
          namespace: this.spec.namespace,
          function: this.spec.function,
          revision: this.spec.revision,
          deadline: req.deadline,
          env: this.env,
          log,
        };
        out = current.run(inv, () => this.handler(arg, ctx));
      } catch (err) {
        this.finish(inv, thrownResult(err, inv.takeLogs()));
        return;
      }
      if (isThenable(out)) {
        Promise.resolve(out).then(
          (v) => this.finishValue(inv, v),
          (e: unknown) => this.finish(inv, thrownResult(e, inv.takeLogs())),
        );
      } else this.finishValue(inv, out);
    });
  }

  private finishValue(inv: Invocation, v: unknown): void {
    if (inv.done) return;
    let result: InvokeResult;
    try {
      result = responseFor(v, inv.takeLogs());
    } catch (e) {
      result = badResponseResult(describeThrown(e), inv.takeLogs());
    }
    this.finish(inv, result);
  }

  private finish(inv: Invocation, result: InvokeResult): void {
    if (inv.done) return;
    inv.done = true;
    clearTimeout(inv.timer);
    this.pending.delete(inv);
    inFlight.delete(inv);
    inv.resolve(result);
  }

  private timeOut(inv: Invocation): void {
    if (inv.done) return;
    this.finish(inv, timeoutResult(this.spec.timeoutMs, inv.takeLogs()));
    // The handler may still be running (a loop, a promise never settled): nothing on this process
    // can be trusted to be clean, so it takes no more requests and the owner ends it.
    this.isReplaced = true;
    for (const other of [...this.pending]) this.finish(other, replacedResult());
    this.onReplaced?.();
  }
}

function isParseError(err: unknown, url: string): boolean {
  if (!(err instanceof SyntaxError)) return false;
  // A SyntaxError the module's own code threw (JSON.parse at top level) has a frame in the module.
  const stack = typeof err.stack === "string" ? err.stack : "";
  return !stack.split("\n").some((l) => l.trimStart().startsWith("at ") && l.includes(url));
}

/** Imports the bundle and checks its default export; rejects with KUMO_E_LOAD_FAILED (worded as the isolate runtime words it). */
export async function loadFunction(spec: PodSpec, options: { logSink?: LogSink } = {}): Promise<LoadedFunction> {
  captureConsole();
  const failed = (problem: string, fix: string, cause?: unknown): KumoError =>
    new KumoError("KUMO_E_LOAD_FAILED", `function ${spec.namespace}/${spec.function} revision ${spec.revision} could not be loaded: ${problem}: ${fix}`, cause === undefined ? {} : { cause });
  let url: string;
  if (spec.codePath !== undefined) url = pathToFileURL(spec.codePath).href;
  else if (spec.code !== undefined) url = "data:text/javascript;base64," + Buffer.from(spec.code).toString("base64");
  else throw failed("the revision has neither codePath nor code", "deploy the function again");
  let ns: Record<string, unknown>;
  try {
    ns = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    if (isParseError(err, url)) throw failed(`the bundle has a syntax error (${(err as Error).message})`, "fix the code and deploy again; the bundle must be an ES module", err);
    throw failed(`its top-level code threw (${describeThrown(err)})`, "fix the code that runs when the module loads (outside the handler)", err);
  }
  if (!("default" in ns)) {
    throw failed("the bundle has no default export", "export the handler as the default export: `export default async (input, ctx) => { ... }`");
  }
  const handler = ns.default;
  if (typeof handler !== "function") {
    throw failed(`the default export is ${typeName(handler)}, not a function`, "export the handler function as the default export: `export default async (input, ctx) => { ... }`");
  }
  return new LoadedFunction(spec, handler as HandlerFn, options.logSink);
}
