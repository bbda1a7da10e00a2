// The isolate instance backend: starts instances of revisions as V8 isolates in this process. It
// shares what every instance can reuse — the prelude snapshot, V8 code caches per bundle, and
// which revisions must run on isolated-vm's threads.

import ivm from "isolated-vm";
import { KumoError } from "../../services/model/index.ts";
import type { Instance, InstanceBackend, LoadSpec } from "../../services/model/index.ts";
import { IsolateInstance } from "./instance.ts";
import type { Dispatch, InstanceSetup } from "./instance.ts";
import { preludeSource } from "./prelude.ts";

/** Options of createIsolateBackend. */
export interface IsolateBackendOptions {
  /**
   * Where handlers run. "auto" (default): on the calling thread, which is fastest, until a
   * synchronous run averages more than `inlineBudgetMs` per invocation; that revision then runs
   * on isolated-vm's threads. "inline": always on the calling thread. "thread": always on
   * isolated-vm's threads, so a busy handler never blocks the event loop (about 25% more CPU per
   * request under load). On the calling thread a handler stuck in a synchronous loop blocks the
   * event loop until its deadline, once; the revision then moves to threads.
   */
  dispatch?: "auto" | "inline" | "thread";
  /** Longest average synchronous run (ms) per invocation tolerated on the calling thread in "auto" mode; default 10. */
  inlineBudgetMs?: number;
  /** Start isolates from a V8 snapshot of the prelude (default true). */
  snapshot?: boolean;
  /** Keep V8 code caches of loaded bundles to compile the next instance faster (default true). */
  codeCache?: boolean;
}

const MIN_MEMORY_MB = 8;

// The prelude snapshot is the same for every backend in the process; built on first use.
let preludeSnapshot: ivm.ExternalCopy<ArrayBuffer> | null | undefined;

function snapshotOfPrelude(): ivm.ExternalCopy<ArrayBuffer> | null {
  if (preludeSnapshot === undefined) {
    try {
      preludeSnapshot = ivm.Isolate.createSnapshot([{ code: preludeSource, filename: "kumo:///prelude.js" }]);
    } catch {
      // Snapshots can fail on unusual V8 builds; every context then evaluates the prelude itself.
      preludeSnapshot = null;
    }
  }
  return preludeSnapshot;
}

function revisionKey(spec: LoadSpec): string {
  return `${spec.namespace}/${spec.function}/${spec.revision}`;
}

class IsolateBackend implements InstanceBackend {
  readonly runtime = "isolate";
  readonly #dispatch: "auto" | "inline" | "thread";
  readonly #inlineBudgetMs: number;
  readonly #snapshot: boolean;
  readonly #codeCache: Map<string, ivm.ExternalCopy<ArrayBuffer>> | null;
  readonly #threaded = new Set<string>();
  readonly #instances = new Set<IsolateInstance>();
  #closed = false;
  #started = 0;

  constructor(options: IsolateBackendOptions) {
    this.#dispatch = options.dispatch ?? "auto";
    this.#inlineBudgetMs = options.inlineBudgetMs ?? 10;
    this.#snapshot = options.snapshot ?? true;
    this.#codeCache = options.codeCache === false ? null : new Map();
  }

  async start(spec: LoadSpec): Promise<Instance> {
    if (this.#closed) throw new KumoError("KUMO_E_UNAVAILABLE", "the isolate backend is closed: it cannot start new instances");
    const key = revisionKey(spec);
    const dispatch: Dispatch = this.#dispatch === "thread" || (this.#dispatch === "auto" && this.#threaded.has(key)) ? "thread" : "inline";
    const snapshot = this.#snapshot ? snapshotOfPrelude() : null;
    const isolate = new ivm.Isolate({
      memoryLimit: Math.max(MIN_MEMORY_MB, spec.memoryMb),
      ...(snapshot !== null ? { snapshot } : {}),
    });
    const setup: InstanceSetup = {
      id: `${key}#${++this.#started}`,
      dispatch,
      inlineBudgetMs: this.#inlineBudgetMs,
      snapshot,
      codeCache: this.#codeCache,
      onDemote: () => this.#threaded.add(key),
      onGone: (instance) => this.#instances.delete(instance),
    };
    const instance = new IsolateInstance(spec, setup, isolate);
    try {
      await instance.load();
    } catch (err) {
      await instance.dispose();
      if (err instanceof KumoError) throw err;
      throw new KumoError("KUMO_E_LOAD_FAILED", `function ${key} could not be loaded: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (this.#closed) {
      await instance.dispose();
      throw new KumoError("KUMO_E_UNAVAILABLE", "the isolate backend closed while the instance was starting");
    }
    this.#instances.add(instance);
    return instance;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#instances].map((i) => i.dispose()));
    this.#instances.clear();
  }
}

/**
 * An InstanceBackend (runtime "isolate") running each instance in its own V8 isolate. Logs: ctx.log
 * lines always belong to their invocation; console.* lines go to the invocation the host entered
 * the isolate for (its handler call, a timer it set, a fetch it made), so when invocations
 * interleave in one instance a console line written after an await may be attributed to another.
 */
export function createIsolateBackend(options: IsolateBackendOptions = {}): InstanceBackend {
  return new IsolateBackend(options);
}
