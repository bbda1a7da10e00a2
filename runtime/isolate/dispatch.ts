// Where a revision's isolate code runs, decided once per revision and shared by its instances: on
// isolated-vm's threads (never blocks the server) or on the server's thread (fastest). In "auto" a
// revision earns the fast path with a warm-up of quick invocations and loses it for good when a
// crossing is slow or stopped. Pure policy: callers measure and report; nothing here reads a clock.

/** How an instance runs code: on the calling thread (fast) or on isolated-vm's threads (never blocks). */
export type Dispatch = "inline" | "thread";

/** The backend's dispatch settings, the same for every revision. */
export interface DispatchPolicy {
  readonly mode: "auto" | "inline" | "thread";
  /** "auto": quick invocations on threads before a revision moves to the calling thread. */
  readonly warmupInvocations: number;
  /** "auto": longest average synchronous run (ms) per invocation of a crossing still called quick. */
  readonly inlineBudgetMs: number;
  /** "auto": longest synchronous run (ms) one crossing may take on the calling thread before it is stopped. */
  readonly inlineCapMs: number;
}

/** Called when a revision changes dispatch: its key (namespace/function/revision), the new dispatch and why. */
export type DispatchListener = (revision: string, dispatch: Dispatch, why: string) => void;

/** The dispatch of one revision, shared by all its instances. */
export class RevisionDispatch {
  readonly key: string;
  /** Whether crossings should run on the calling thread now. */
  inline: boolean;
  /** Longest timeout (ms) of a crossing on the calling thread; Infinity when only deadlines apply. */
  readonly capMs: number;
  readonly #policy: DispatchPolicy;
  readonly #listener: DispatchListener | undefined;
  #settled: boolean;
  #quick = 0;

  constructor(key: string, policy: DispatchPolicy, listener?: DispatchListener) {
    this.key = key;
    this.#policy = policy;
    this.#listener = listener;
    this.capMs = policy.mode === "auto" ? policy.inlineCapMs : Infinity;
    this.#settled = policy.mode !== "auto";
    this.inline = policy.mode === "inline" || (policy.mode === "auto" && policy.warmupInvocations <= 0);
  }

  /** True while thread crossings should be measured: the revision may still earn the fast path. */
  get warming(): boolean {
    return !this.#settled && !this.inline;
  }

  /** A crossing for `invocations` new invocations ran `ms` synchronously (CPU time on threads, wall time inline). */
  observe(ms: number, invocations: number): void {
    if (this.#settled || !(ms >= 0)) return;
    const { inlineBudgetMs, warmupInvocations } = this.#policy;
    const perInvocation = ms / Math.max(1, invocations);
    if (perInvocation > inlineBudgetMs) {
      // Inline, a slow handler blocks every other request on the server's thread: move it off for
      // good. On threads it only restarts the warm-up, so one slow first call (a cold cache) is forgiven.
      if (this.inline) this.#settle(`its synchronous work averaged ${perInvocation.toFixed(1)} ms per invocation (budget ${inlineBudgetMs} ms)`);
      else this.#quick = 0;
      return;
    }
    if (this.inline) return;
    this.#quick += invocations;
    if (this.#quick >= warmupInvocations) {
      this.inline = true;
      this.#listener?.(this.key, "inline", `${this.#quick} invocations in a row ran under ${inlineBudgetMs} ms each`);
    }
  }

  /** A crossing was stopped by a timeout (its deadline or the cap): the revision stays on threads for good. */
  stopped(why: string): void {
    if (!this.#settled) this.#settle(why);
  }

  #settle(why: string): void {
    this.#settled = true;
    if (!this.inline) return;
    this.inline = false;
    this.#listener?.(this.key, "thread", why);
  }
}
