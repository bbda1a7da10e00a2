// The isolate instance backend: starts instances of revisions as V8 isolates in this process. It
// shares what every instance can reuse — the prelude snapshot, V8 code caches per bundle, and
// where each revision's code runs (isolated-vm's threads or the server's thread).

import ivm from "isolated-vm";
import { KumoError } from "../../services/model/index.ts";
import type { Instance, InstanceBackend, LoadSpec } from "../../services/model/index.ts";
import { RevisionDispatch } from "./dispatch.ts";
import type { DispatchListener, DispatchPolicy } from "./dispatch.ts";
import { IsolateInstance } from "./instance.ts";
import type { InstanceSetup } from "./instance.ts";
import { preludeSource } from "./prelude.ts";

/** Options of createIsolateBackend. */
export interface IsolateBackendOptions {
  /**
   * Where handlers run. "thread": always on isolated-vm's threads, so a busy handler never blocks
   * the event loop (about a third more CPU per request under load). "inline": always on the calling
   * thread, fastest, but a handler stuck in a synchronous loop blocks every function until its
   * deadline. "auto" (default): a revision starts on threads and moves to the calling thread after
   * `warmupInvocations` quick invocations; there each crossing is stopped after `inlineCapMs`
   * (its requests answer 503, not re-run) or when its synchronous work averages more than
   * `inlineBudgetMs` per invocation, and the revision goes back to threads for good. So a runaway
   * loop stalls the server's thread at most `inlineCapMs`, once per revision.
   */
  dispatch?: "auto" | "inline" | "thread";
  /** "auto": longest average synchronous run (ms) per invocation still called quick; default 10. */
  inlineBudgetMs?: number;
  /** "auto": quick invocations on threads before a revision moves to the calling thread; default 50 (0: from the start). */
  warmupInvocations?: number;
  /** "auto": longest synchronous run (ms) of one crossing on the calling thread before it is stopped; default 250. */
  inlineCapMs?: number;
  /** Called when a revision changes dispatch ("namespace/function/revision", the new dispatch, why), e.g. to log it. */
  onDispatchChange?: DispatchListener;
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
  readonly #policy: DispatchPolicy;
  readonly #onDispatchChange: DispatchListener | undefined;
  readonly #snapshot: boolean;
  readonly #codeCache: Map<string, ivm.ExternalCopy<ArrayBuffer>> | null;
  readonly #revisions = new Map<string, RevisionDispatch>();
  readonly #instances = new Set<IsolateInstance>();
  #closed = false;
  #started = 0;

  constructor(options: IsolateBackendOptions) {
    this.#policy = {
      mode: options.dispatch ?? "auto",
      inlineBudgetMs: options.inlineBudgetMs ?? 10,
      warmupInvocations: options.warmupInvocations ?? 50,
      inlineCapMs: options.inlineCapMs ?? 250,
    };
    this.#onDispatchChange = options.onDispatchChange;
    this.#snapshot = options.snapshot ?? true;
    this.#codeCache = options.codeCache === false ? null : new Map();
  }

  async start(spec: LoadSpec): Promise<Instance> {
    if (this.#closed) throw new KumoError("KUMO_E_UNAVAILABLE", "the isolate backend is closed: it cannot start new instances");
    const key = revisionKey(spec);
    let dispatch = this.#revisions.get(key);
    if (dispatch === undefined) {
      dispatch = new RevisionDispatch(key, this.#policy, this.#onDispatchChange);
      this.#revisions.set(key, dispatch);
    }
    const snapshot = this.#snapshot ? snapshotOfPrelude() : null;
    const isolate = new ivm.Isolate({
      memoryLimit: Math.max(MIN_MEMORY_MB, spec.memoryMb),
      ...(snapshot !== null ? { snapshot } : {}),
    });
    const setup: InstanceSetup = {
      id: `${key}#${++this.#started}`,
      dispatch,
      snapshot,
      codeCache: this.#codeCache,
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
