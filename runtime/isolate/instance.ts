// One function instance: a V8 isolate (isolated-vm) holding a revision's bundle, entered once per
// invocation. The isolate builds the input, runs the handler and hands back a finished result
// (response and logs) through one host callback; the host only keeps deadlines and bridges
// fetch, timers, URL parsing and randomness.

import { getRandomValues } from "node:crypto";
import ivm from "isolated-vm";
import { KumoError } from "../../services/model/index.ts";
import type { Instance, InvokeRequest, InvokeResult, LoadSpec, LogLine } from "../../services/model/index.ts";
import { preludeSource } from "./prelude.ts";
import type { RevisionDispatch } from "./dispatch.ts";
import { checkedResult, fastPathResult, internalResult, memoryResult, replacedResult, timeoutResult } from "./results.ts";

type IsolateFn = (...args: unknown[]) => unknown;
type FnRef = ivm.Reference<IsolateFn>;

/** What the backend shares with the instances it starts. */
export interface InstanceSetup {
  readonly id: string;
  /** Where the revision's code runs now; shared by its instances, which report what they measure. */
  readonly dispatch: RevisionDispatch;
  readonly snapshot: ivm.ExternalCopy<ArrayBuffer> | null;
  readonly codeCache: Map<string, ivm.ExternalCopy<ArrayBuffer>> | null;
  onGone(instance: IsolateInstance): void;
}

interface Pending {
  readonly seq: number;
  readonly req: InvokeRequest;
  resolve: (r: InvokeResult) => void;
  timer: NodeJS.Timeout | undefined;
}

/** The dispatcher functions the prelude returns from __kumoBoot. */
interface Dispatcher {
  invokeBatch: FnRef;
  takeOutbox: FnRef;
  settleFetch: FnRef;
  fireTimer: FnRef;
  salvage: FnRef;
  install: FnRef;
}

/** What the isolate still holds when the host stops it. */
interface Salvage {
  running: number;
  logs: Record<string, LogLine[]>;
  outbox: unknown[];
}

// "capped": an inline crossing ran past the fast path's cap before any deadline.
type Death = "timeout" | "capped" | "memory" | "gone";

const CODE_CACHE_ENTRIES = 64;
const SALVAGE_MS = 50;
const OUTBOX = { result: { copy: true as const } };
const REDIRECTS = new Set<string>(["follow", "error", "manual"]);

// Timers and isolated-vm timeouts take 1..2^31-1 ms (0 would mean "no timeout").
function clampMs(ms: number): number {
  return Math.min(2_147_483_647, Math.max(1, Math.ceil(ms)));
}

let crossings = 0;

// isolated-vm keeps each crossing's timer until it would expire and then frees all that expire in
// the same instant recursively: tens of thousands sharing one deadline overflow its thread's stack.
// Spreading them over 32 ms bounds that; a runaway loop is stopped at most 31 ms late.
function crossingTimeout(ms: number): number {
  return clampMs(ms + (crossings++ & 31));
}

// CPU time (ms) the isolate spent since `since` (ns); undefined once it is gone.
function cpuMsSince(isolate: ivm.Isolate, since: bigint): number | undefined {
  try {
    return Number(isolate.cpuTime - since) / 1e6;
  } catch {
    return undefined;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function deathOf(message: string): Death | undefined {
  if (message.includes("memory limit")) return "memory";
  if (message === "Script execution timed out.") return "timeout";
  if (message.includes("disposed")) return "gone";
  return undefined;
}

function urlParts(u: URL): string[] {
  return [u.href, u.origin, u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash];
}

function fetchFailure(err: unknown): string {
  const cause = err instanceof Error && err.cause !== undefined ? `: ${messageOf(err.cause)}` : "";
  return `${messageOf(err)}${cause}`;
}

/** A running isolate of one revision. */
export class IsolateInstance implements Instance {
  readonly id: string;
  readonly revision: string;
  readonly #spec: LoadSpec;
  readonly #setup: InstanceSetup;
  readonly #isolate: ivm.Isolate;
  #dispatcher: Dispatcher | undefined;
  readonly #dispatch: RevisionDispatch;
  // Crossings queued or running on isolated-vm's threads: while any is, an inline crossing would
  // block the server's thread on the isolate's lock until they finish.
  #threadCrossings = 0;
  #dead = false;
  #seq = 0;
  readonly #pending = new Map<number, Pending>();
  // Invocations waiting for the next batch crossing (flat: seq, requestId, deadline, kind, input).
  #batch: unknown[] = [];
  #batched: Pending[] = [];
  #flushScheduled = false;
  readonly #timers = new Map<number, NodeJS.Timeout>();
  readonly #fetches = new AbortController();
  // Reused for every crossing; only `timeout` changes.
  readonly #crossing = { arguments: { copy: true as const }, timeout: 1 };

  constructor(spec: LoadSpec, setup: InstanceSetup, isolate: ivm.Isolate) {
    this.id = setup.id;
    this.revision = spec.revision;
    this.#spec = spec;
    this.#setup = setup;
    this.#isolate = isolate;
    this.#dispatch = setup.dispatch;
  }

  get healthy(): boolean {
    return !this.#dead && !this.#isolate.isDisposed;
  }

  /** Builds the context, binds the host bridges and loads the bundle; rejects with KUMO_E_LOAD_FAILED. */
  async load(): Promise<void> {
    const spec = this.#spec;
    const isolate = this.#isolate;
    const context = isolate.createContextSync();
    if (this.#setup.snapshot === null) context.evalSync(preludeSource, { filename: "kumo:///prelude.js" });
    const boot = context.global.getSync("__kumoBoot", { reference: true }) as FnRef;
    const meta = JSON.stringify({ namespace: spec.namespace, function: spec.function, revision: spec.revision, env: spec.env });
    const api = boot.applySync(undefined, [...this.#bridges(), meta], { result: { reference: true } }) as ivm.Reference<Record<string, unknown>>;
    const fn = (name: string): FnRef => api.getSync(name, { reference: true }) as FnRef;
    this.#dispatcher = {
      invokeBatch: fn("invokeBatch"),
      takeOutbox: fn("takeOutbox"),
      settleFetch: fn("settleFetch"),
      fireTimer: fn("fireTimer"),
      salvage: fn("salvage"),
      install: fn("install"),
    };
    boot.release();
    api.release();

    const filename = `kumo:///${spec.namespace}/${spec.function}/${spec.revision}.js`;
    const failed = (problem: string, fix: string, cause?: unknown): KumoError =>
      new KumoError("KUMO_E_LOAD_FAILED", `function ${spec.namespace}/${spec.function} revision ${spec.revision} could not be loaded: ${problem}: ${fix}`, cause === undefined ? {} : { cause });

    const cache = this.#setup.codeCache;
    const cached = cache?.get(spec.code);
    let module: ivm.Module;
    try {
      module = await isolate.compileModule(spec.code, cached !== undefined ? { filename, cachedData: cached } : { filename, produceCachedData: cache !== null });
    } catch (err) {
      throw failed(`the bundle has a syntax error (${messageOf(err)})`, "fix the code and deploy again; the bundle must be an ES module", err);
    }
    const compiled = module as ivm.Module & ivm.CachedDataResult & { cachedDataRejected?: boolean };
    if (cache !== null && compiled.cachedData !== undefined && (cached === undefined || compiled.cachedDataRejected === true)) {
      if (cache.size >= CODE_CACHE_ENTRIES) {
        const oldest = cache.keys().next();
        if (oldest.done !== true) cache.delete(oldest.value);
      }
      cache.set(spec.code, compiled.cachedData);
    }
    const imports = module.dependencySpecifiers;
    if (imports.length > 0) {
      throw failed(
        `the bundle imports ${imports.map((s) => `"${s}"`).join(", ")}, but an isolate bundle must be self-contained`,
        "bundle every dependency into it (esbuild bundle: true), or use runtime \"process\" for Node built-ins",
      );
    }
    try {
      await module.instantiate(context, (specifier) => {
        throw new Error(`cannot import "${specifier}"`);
      });
      await module.evaluate({ timeout: spec.timeoutMs });
    } catch (err) {
      const message = messageOf(err);
      const death = deathOf(message);
      if (death === "memory") throw failed(`its top-level code exceeded the memory limit of ${spec.memoryMb} MB`, "raise --memory (limits.memoryMb) or do less work at load time", err);
      if (death === "timeout") throw failed(`its top-level code ran longer than the timeout of ${spec.timeoutMs} ms`, "move slow work out of module scope into the handler", err);
      throw failed(`its top-level code threw (${message})`, "fix the code that runs when the module loads (outside the handler)", err);
    }
    const problem = this.#dispatcher.install.applySync(undefined, [module.namespace.derefInto()]);
    if (problem === "no-default") {
      throw failed("the bundle has no default export", "export the handler as the default export: `export default async (input, ctx) => { ... }`");
    }
    if (typeof problem === "string" && problem !== "") {
      throw failed(problem, "export the handler function as the default export: `export default async (input, ctx) => { ... }`");
    }
  }

  invoke(req: InvokeRequest): Promise<InvokeResult> {
    if (this.#dead || this.#dispatcher === undefined) return Promise.resolve(replacedResult());
    const seq = ++this.#seq;
    return new Promise<InvokeResult>((resolve) => {
      const p: Pending = { seq, req, resolve, timer: undefined };
      this.#pending.set(seq, p);
      this.#batch.push(seq, req.requestId, req.deadline, req.kind, req.input);
      this.#batched.push(p);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        // Requests that arrive in the same event-loop turn share one isolate crossing.
        setImmediate(this.#flush);
      }
    });
  }

  /** Sends the waiting invocations into the isolate in one crossing and collects what finished. */
  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const dispatcher = this.#dispatcher;
    if (this.#dead || dispatcher === undefined) return;
    if (this.#dispatch.inline && this.#threadCrossings > 0) {
      // The revision just moved to the calling thread: hold the batch until this isolate's thread
      // crossings are done (#threadDone flushes it), else applySync would wait for them.
      this.#armDeadlines(this.#batched);
      return;
    }
    const batch = this.#batch;
    const batched = this.#batched;
    this.#batch = [];
    this.#batched = [];
    let earliest = Infinity;
    for (const p of batched) if (p.req.deadline < earliest) earliest = p.req.deadline;
    const crossing = this.#crossing;
    const seqs = batched.map((p) => p.seq);
    const remaining = earliest - Date.now();
    if (this.#dispatch.inline) {
      const capped = remaining > this.#dispatch.capMs;
      crossing.timeout = crossingTimeout(capped ? this.#dispatch.capMs : remaining);
      const started = performance.now();
      let outbox: unknown[];
      try {
        dispatcher.invokeBatch.applySync(undefined, [batch], crossing);
        outbox = dispatcher.takeOutbox.applySync(undefined, [], OUTBOX) as unknown[];
      } catch (err) {
        this.#crossingFailed(err, seqs, capped);
        return;
      }
      this.#dispatch.observe(performance.now() - started, batched.length);
      this.#deliver(outbox);
    } else {
      crossing.timeout = crossingTimeout(remaining);
      const cpu = this.#dispatch.warming ? this.#isolate.cpuTime : undefined;
      this.#threadCrossings++;
      dispatcher.invokeBatch.apply(undefined, [batch], crossing).catch((err: unknown) => this.#crossingFailed(err, seqs, false));
      // Queued right behind the batch, so it runs once the batch and its microtasks are done.
      dispatcher.takeOutbox.apply(undefined, [], OUTBOX).then(
        (outbox) => {
          this.#threadDone(cpu, batched.length);
          this.#deliver(outbox as unknown[]);
        },
        () => this.#threadDone(undefined, 0), // the batch's own rejection reports the failure
      );
    }
    this.#armDeadlines(batched);
  };

  /** Starts the deadline timer of each invocation still waiting for its result. */
  #armDeadlines(batched: Pending[]): void {
    const now = Date.now();
    for (const p of batched) {
      if (this.#pending.get(p.seq) === p && p.timer === undefined) {
        p.timer = setTimeout(() => this.#die("timeout", [p.seq]), clampMs(p.req.deadline - now));
      }
    }
  }

  /** A thread crossing finished; `cpu` (ns, when measured) is the isolate's CPU time when it was sent. */
  #threadDone(cpu: bigint | undefined, invocations: number): void {
    this.#threadCrossings--;
    if (cpu !== undefined) {
      const ms = cpuMsSince(this.#isolate, cpu);
      if (ms !== undefined) this.#dispatch.observe(ms, invocations);
    }
    if (this.#threadCrossings === 0 && this.#batched.length > 0 && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
  }

  /** Resolves the invocations in an outbox: flat [seq, status, headers, body, logs, ...]. */
  #deliver(outbox: unknown[]): void {
    for (let i = 0; i + 4 < outbox.length; i += 5) {
      const seq = outbox[i] as number;
      const status = outbox[i + 1] as number;
      if (status === 0) this.#fail(seq, outbox[i + 2]);
      else this.#succeed(seq, status, outbox[i + 2] as Record<string, string> | null, outbox[i + 3] as string, outbox[i + 4] as LogLine[] | null);
    }
  }

  #succeed(seq: number, status: number, headers: Record<string, string> | null, body: string, logs: LogLine[] | null): void {
    this.#complete(seq, { outcome: "success", status, headers: headers ?? { "content-type": "application/json" }, body, logs: logs ?? [] });
  }

  #fail(seq: number, value: unknown): void {
    this.#complete(seq, checkedResult(value) ?? internalResult("the isolate returned a malformed result (did the function overwrite built-ins?)"));
  }

  async dispose(): Promise<void> {
    if (this.#dead) return;
    this.#dead = true;
    for (const p of this.#takePending()) this.#resolve(p, replacedResult());
    this.#release();
  }

  /** Host functions the prelude calls, in __kumoBoot's parameter order. */
  #bridges(): ivm.Callback[] {
    return [
      new ivm.Callback((id: number, owner: number, url: string, method: string, headers: [string, string][], body: string | ArrayBuffer | undefined, redirect: string) => {
        this.#fetch(id, owner, url, method, headers, body, redirect);
      }),
      new ivm.Callback((id: number, owner: number, ms: number, repeat: boolean) => {
        this.#timer(id, owner, ms, repeat);
      }),
      new ivm.Callback((id: number) => {
        const t = this.#timers.get(id);
        if (t !== undefined) {
          clearTimeout(t);
          this.#timers.delete(id);
        }
      }),
      new ivm.Callback((n: number) => getRandomValues(new Uint8Array(Math.min(Math.max(0, n | 0), 65536))).buffer),
      new ivm.Callback((input: string, base: string | undefined) => {
        const u = URL.parse(input, base);
        return u === null ? null : urlParts(u);
      }),
      new ivm.Callback((href: string, name: string, value: string) => {
        const u = new URL(href);
        switch (name) {
          case "protocol": u.protocol = value; break;
          case "username": u.username = value; break;
          case "password": u.password = value; break;
          case "host": u.host = value; break;
          case "hostname": u.hostname = value; break;
          case "port": u.port = value; break;
          case "pathname": u.pathname = value; break;
          case "search": u.search = value; break;
          case "hash": u.hash = value; break;
        }
        return urlParts(u);
      }),
      new ivm.Callback((seq: number, status: number, headers: Record<string, string> | null, body: string, logs: LogLine[] | null) => {
        this.#succeed(seq, status, headers, body, logs);
      }),
      new ivm.Callback((seq: number, value: unknown) => {
        this.#fail(seq, value);
      }),
    ];
  }

  /** Continues invocation `owner` in the isolate (a timer fired, a fetch settled), bounded by its deadline. */
  #enter(fn: FnRef, args: unknown[], owner: number): void {
    if (this.#dead) return;
    const crossing = this.#crossing;
    const deadline = this.#pending.get(owner)?.req.deadline;
    const remaining = deadline === undefined ? this.#spec.timeoutMs : deadline - Date.now();
    if (this.#dispatch.inline && this.#threadCrossings === 0) {
      const capped = remaining > this.#dispatch.capMs;
      crossing.timeout = crossingTimeout(capped ? this.#dispatch.capMs : remaining);
      const started = performance.now();
      try {
        fn.applySync(undefined, args, crossing);
      } catch (err) {
        this.#crossingFailed(err, [owner], capped);
        return;
      }
      this.#dispatch.observe(performance.now() - started, 0);
    } else {
      crossing.timeout = crossingTimeout(remaining);
      const cpu = this.#dispatch.warming ? this.#isolate.cpuTime : undefined;
      this.#threadCrossings++;
      fn.apply(undefined, args, crossing).then(
        () => this.#threadDone(cpu, 0),
        (err: unknown) => {
          this.#threadDone(undefined, 0);
          this.#crossingFailed(err, [owner], false);
        },
      );
    }
  }

  /**
   * A crossing on behalf of `owners` failed: the isolate died, or (rarely) the input could not be
   * copied. `capped`: its timeout was the fast path's cap, not a deadline.
   */
  #crossingFailed(err: unknown, owners: number[], capped: boolean): void {
    const message = messageOf(err);
    let death = deathOf(message);
    if (death === "timeout") {
      // A handler that ran until it was stopped may do it again: never on the server's thread. Noted
      // even when the instance is already dying: on threads the deadline timer usually fires first.
      const dispatch = this.#dispatch;
      dispatch.stopped(capped ? `a crossing ran synchronously for more than ${dispatch.capMs} ms` : "a crossing ran synchronously until its deadline");
    }
    if (this.#dead) return;
    if (this.#isolate.isDisposed) death ??= "gone";
    if (death === "timeout") {
      this.#die(capped ? "capped" : "timeout", owners);
      return;
    }
    if (death !== undefined) {
      this.#die(death, owners);
      return;
    }
    for (const seq of owners) this.#complete(seq, internalResult(message));
  }

  #complete(seq: number, result: InvokeResult): void {
    const p = this.#pending.get(seq);
    if (p === undefined) return;
    this.#pending.delete(seq);
    this.#resolve(p, result);
  }

  #resolve(p: Pending, result: InvokeResult): void {
    if (p.timer !== undefined) clearTimeout(p.timer);
    p.resolve(result);
  }

  #takePending(): Pending[] {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    return all;
  }

  /**
   * Ends the instance after a timeout, memory exhaustion or loss of the isolate. `owners` are the
   * invocations of the crossing that failed: a timeout goes to the one that was running (or whose
   * deadline passed), a memory error to the owners, a stop at the fast path's cap to the owners
   * whose deadline has not passed (503, not re-run); everyone else in flight gets "replaced".
   */
  #die(death: Death, owners: number[]): void {
    if (this.#dead) return;
    this.#dead = true;
    for (const p of this.#pending.values()) if (p.timer !== undefined) clearTimeout(p.timer);
    const settle = (salvage: Salvage): void => {
      // Results that were finished but not yet collected are still good.
      this.#deliver(salvage.outbox);
      const now = Date.now();
      for (const v of this.#takePending()) {
        const logs = salvage.logs[String(v.seq)] ?? [];
        const stopped = v.seq === salvage.running || v.req.deadline <= now || (salvage.running === 0 && owners.length === 1 && owners[0] === v.seq);
        if (death === "timeout" && stopped) this.#resolve(v, timeoutResult(this.#spec.timeoutMs, logs));
        else if (death === "capped" && v.req.deadline <= now) this.#resolve(v, timeoutResult(this.#spec.timeoutMs, logs));
        else if (death === "capped" && (owners.includes(v.seq) || v.seq === salvage.running)) this.#resolve(v, fastPathResult(this.#dispatch.capMs, logs));
        else if (death === "memory" && owners.includes(v.seq)) this.#resolve(v, memoryResult(this.#spec.memoryMb, logs));
        else this.#resolve(v, replacedResult());
      }
      this.#release();
    };
    const nothing: Salvage = { running: 0, logs: {}, outbox: [] };
    if ((death !== "timeout" && death !== "capped") || this.#pending.size === 0) {
      settle(nothing);
      return;
    }
    void this.#salvage([...this.#pending.keys()]).then((s) => settle(s ?? nothing));
  }

  /** Reads what the isolate still holds for stopped invocations before it goes (best effort, bounded). */
  async #salvage(seqs: number[]): Promise<Salvage | undefined> {
    const salvage = this.#dispatcher?.salvage;
    if (salvage === undefined || this.#isolate.isDisposed) return undefined;
    const options = { arguments: { copy: true as const }, result: { copy: true as const }, timeout: SALVAGE_MS };
    try {
      if (this.#dispatch.inline && this.#threadCrossings === 0) return salvage.applySync(undefined, [seqs], options) as Salvage;
      let timer: NodeJS.Timeout | undefined;
      const giveUp = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), SALVAGE_MS * 4);
      });
      const result = await Promise.race([salvage.apply(undefined, [seqs], options) as Promise<Salvage>, giveUp]);
      clearTimeout(timer);
      return result;
    } catch {
      return undefined;
    }
  }

  #release(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#fetches.abort();
    if (!this.#isolate.isDisposed) {
      try {
        this.#isolate.dispose();
      } catch {
        // Already disposed by isolated-vm (memory limit); nothing left to free.
      }
    }
    this.#setup.onGone(this);
  }

  #timer(id: number, owner: number, ms: number, repeat: boolean): void {
    if (this.#dead) return;
    const fireTimer = this.#dispatcher?.fireTimer;
    if (fireTimer === undefined) return;
    const fire = (): void => {
      if (!repeat) this.#timers.delete(id);
      this.#enter(fireTimer, [id], owner);
    };
    const handle = repeat ? setInterval(fire, ms) : setTimeout(fire, ms);
    // A function's timers must not keep the platform process alive.
    handle.unref();
    this.#timers.set(id, handle);
  }

  #fetch(id: number, owner: number, url: string, method: string, headers: [string, string][], body: string | ArrayBuffer | undefined, redirect: string): void {
    const settleFetch = this.#dispatcher?.settleFetch;
    if (this.#dead || settleFetch === undefined) return;
    const deadline = this.#pending.get(owner)?.req.deadline ?? Date.now() + this.#spec.timeoutMs;
    const signal = AbortSignal.any([this.#fetches.signal, AbortSignal.timeout(clampMs(deadline - Date.now()))]);
    const init: RequestInit = { method, headers, signal, redirect: REDIRECTS.has(redirect) ? (redirect as RequestRedirect) : "follow" };
    if (body !== undefined) init.body = body;
    let request: Promise<Response>;
    try {
      request = fetch(url, init);
    } catch (err) {
      request = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    request
      .then(async (res) => {
        const buffer = await res.arrayBuffer();
        const pairs: [string, string][] = [];
        res.headers.forEach((v, k) => pairs.push([k, v]));
        const value = { status: res.status, statusText: res.statusText, url: res.url, redirected: res.redirected, headers: pairs, body: buffer };
        this.#enter(settleFetch, [id, true, value], owner);
      })
      .catch((err: unknown) => {
        this.#enter(settleFetch, [id, false, fetchFailure(err)], owner);
      });
  }
}
