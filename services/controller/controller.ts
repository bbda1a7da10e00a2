// The controller's reconcile loop: when a Function's spec changes (generation moves past
// status.observedGeneration) it builds the source, records an immutable Revision, checks that
// the bundle loads, and writes readable status conditions. Every phase is idempotent, so a
// crash mid-way is repaired by the next pass.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  API_VERSION,
  KumoError,
  setCondition,
  condition,
  type Clock,
  type Condition,
  type FunctionStatus,
  type InstanceBackend,
  type KumoFunction,
  type Revision,
  type RuntimeKind,
} from "../model/index.ts";
import type { BlobStore, Store, Watch } from "../store/index.ts";

/** What the controller needs from the builder. */
export interface Builder {
  unpackSource(bytes: Uint8Array, destDir: string): Promise<{ files: number }>;
  buildFunction(options: { sourceDir: string; entry?: string; runtime: RuntimeKind }): Promise<{ code: string; digest: string; entry: string; durationMs: number; warnings: string[] }>;
}

/** Dependencies of the controller. */
export interface ControllerDeps {
  store: Store;
  blobs: BlobStore;
  builder: Builder;
  backends: Readonly<Record<RuntimeKind, InstanceBackend | undefined>>;
  clock: Clock;
  /** The public URL of a function. */
  functionUrl: (namespace: string, name: string) => string;
  /** Resolves once the gateway routes the function's new latest revision (embedded: the route table). */
  routed?: (namespace: string, name: string, revision: string) => Promise<void>;
  log?: (line: string) => void;
}

/** The name of the revision made from a function generation. */
export function revisionName(fn: string, generation: number): string {
  return `${fn}-${String(generation).padStart(5, "0")}`;
}

/** True when the function's current spec has not been reconciled yet. */
export function needsReconcile(fn: KumoFunction): boolean {
  return fn.status.observedGeneration !== fn.metadata.generation;
}

/** The Revision object for a function generation and its built artifact (pure). */
export function makeRevision(fn: KumoFunction, artifact: string): Omit<Revision, "metadata"> & { metadata: { name: string; namespace: string; ownerName: string; labels: Record<string, string> } } {
  const s = fn.spec;
  return {
    apiVersion: API_VERSION,
    kind: "Revision",
    metadata: {
      name: revisionName(fn.metadata.name, fn.metadata.generation),
      namespace: fn.metadata.namespace,
      ownerName: fn.metadata.name,
      labels: { "kumo.dev/function": fn.metadata.name },
    },
    spec: {
      functionName: fn.metadata.name,
      generation: fn.metadata.generation,
      artifact,
      sourceDigest: s.source.digest,
      ...(s.entry !== undefined ? { entry: s.entry } : {}),
      runtime: s.runtime,
      env: { ...s.env },
      limits: { ...s.limits },
      concurrency: s.concurrency,
      scale: { ...s.scale },
    },
    status: {},
  };
}

type Failed = { ok: false; stage: "source" | "build" | "load"; reason: string; message: string };
type Built = { ok: true; code: string; artifact: string; note: string };

/** True when a revision already serves exactly this spec (only traffic or labels changed since). */
export function servesSpec(rev: Revision, spec: KumoFunction["spec"]): boolean {
  const r = rev.spec;
  return (
    r.sourceDigest === spec.source.digest &&
    r.entry === spec.entry &&
    r.runtime === spec.runtime &&
    r.concurrency === spec.concurrency &&
    JSON.stringify(r.env) === JSON.stringify(spec.env) &&
    JSON.stringify(r.limits) === JSON.stringify(spec.limits) &&
    JSON.stringify(r.scale) === JSON.stringify(spec.scale)
  );
}

/** True when a revision's artifact can be reused for this spec (same source, entry and runtime). */
export function canReuseArtifact(rev: Revision, spec: KumoFunction["spec"]): boolean {
  return rev.spec.sourceDigest === spec.source.digest && rev.spec.entry === spec.entry && rev.spec.runtime === spec.runtime;
}

/** Reconciles Functions: build, revision, status. */
export class Controller {
  private readonly deps: ControllerDeps;
  private watch: Watch<"Function"> | undefined;
  private loop: Promise<void> | undefined;
  /** Per-function work, serialized; a change during work is coalesced into one more pass. */
  private readonly work = new Map<string, { running: Promise<void>; again: boolean }>();

  constructor(deps: ControllerDeps) {
    this.deps = deps;
  }

  /** Reconciles existing functions, then follows changes. */
  async start(): Promise<void> {
    const watch = this.deps.store.watch("Function");
    this.watch = watch;
    this.loop = (async () => {
      for await (const ev of watch) {
        if (ev.type === "DELETED") continue;
        if (needsReconcile(ev.object)) this.enqueue(ev.object.metadata.namespace, ev.object.metadata.name);
      }
    })();
  }

  /** Stops following changes and waits for work in progress. */
  async stop(): Promise<void> {
    this.watch?.close();
    await this.loop;
    await Promise.all([...this.work.values()].map((w) => w.running));
  }

  /** Resolves when no reconcile is running (for tests). */
  async idle(): Promise<void> {
    while (this.work.size > 0) await Promise.all([...this.work.values()].map((w) => w.running));
  }

  private enqueue(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const busy = this.work.get(key);
    if (busy !== undefined) {
      busy.again = true;
      return;
    }
    const entry = { running: Promise.resolve(), again: false };
    entry.running = (async () => {
      do {
        entry.again = false;
        try {
          await this.reconcile(namespace, name);
        } catch (err) {
          this.deps.log?.(`controller: reconcile ${key} failed: ${err instanceof Error ? err.message : String(err)}`);
        }
      } while (entry.again);
      this.work.delete(key);
    })();
    this.work.set(key, entry);
  }

  /** One pass for one function, from the store's current state. */
  async reconcile(namespace: string, name: string): Promise<void> {
    const { store } = this.deps;
    const fn = await store.get("Function", namespace, name);
    if (fn === undefined || !needsReconcile(fn)) return;
    const generation = fn.metadata.generation;
    const started = this.deps.clock.now();
    const url = this.deps.functionUrl(namespace, name);
    const last = fn.status.latestReadyRevision === undefined ? undefined : await store.get("Revision", namespace, fn.status.latestReadyRevision);
    if (last !== undefined && servesSpec(last, fn.spec)) {
      // Only traffic (or labels) changed: no new revision; the gateway re-routes from the spec.
      await this.writeStatus(fn, (s) => ({
        ...s,
        observedGeneration: generation,
        url,
        conditions: setCondition(s.conditions, this.cond("Ready", "True", "TrafficUpdated", `revision ${last.metadata.name} is ready; traffic updated`)),
      }));
      return;
    }
    await this.writeStatus(fn, (s) => ({
      ...s,
      conditions: setCondition(s.conditions, this.cond("Ready", "Unknown", "Building", `building generation ${generation}`)),
    }));
    const outcome = await this.buildAndLoad(fn, last !== undefined && canReuseArtifact(last, fn.spec) ? last.spec.artifact : undefined);
    if (!outcome.ok) {
      await this.writeStatus(fn, (s) => {
        let conditions = setCondition(s.conditions, this.cond("Built", outcome.stage === "build" ? "False" : "True", outcome.reason, outcome.message));
        const serving = s.latestReadyRevision !== undefined ? ` (revision ${s.latestReadyRevision} keeps serving)` : "";
        conditions = setCondition(conditions, this.cond("Ready", "False", outcome.reason, outcome.message + serving));
        return { ...s, observedGeneration: generation, conditions, url };
      });
      this.deps.log?.(`controller: ${namespace}/${name} generation ${generation}: ${outcome.reason}: ${outcome.message}`);
      return;
    }
    const rev = await this.ensureRevision(fn, outcome.artifact);
    const revName = rev.metadata.name;
    // Route first, then report Ready: whoever sees Ready can call the new revision at once.
    await this.writeStatus(fn, (s) => ({
      ...s,
      latestCreatedRevision: revName,
      latestReadyRevision: revName,
      url,
      conditions: setCondition(
        setCondition(s.conditions, this.cond("Built", "True", "Built", outcome.note)),
        this.cond("Ready", "Unknown", "Routing", `routing traffic to revision ${revName}`),
      ),
    }));
    await this.deps.routed?.(namespace, name, revName);
    const ms = this.deps.clock.now() - started;
    await this.writeStatus(fn, (s) => ({
      ...s,
      observedGeneration: generation,
      conditions: setCondition(s.conditions, this.cond("Ready", "True", "RevisionReady", `revision ${revName} is ready (${ms} ms)`)),
    }));
  }

  private async buildAndLoad(
    fn: KumoFunction,
    reuseArtifact: string | undefined,
  ): Promise<{ ok: true; artifact: string; note: string } | Failed> {
    const { blobs } = this.deps;
    const built = reuseArtifact !== undefined ? await this.reuse(reuseArtifact) : await this.build(fn);
    if (!built.ok) return built;
    const { code, artifact } = built;
    // Load it once, as the gateway will, so a bundle that throws at load time or exports no
    // handler fails the deploy instead of the first request.
    const backend = this.deps.backends[fn.spec.runtime];
    if (backend === undefined) {
      return { ok: false, stage: "load", reason: "RuntimeUnavailable", message: `runtime "${fn.spec.runtime}" is not enabled on this server` };
    }
    try {
      const instance = await backend.start({
        namespace: fn.metadata.namespace,
        function: fn.metadata.name,
        revision: revisionName(fn.metadata.name, fn.metadata.generation),
        code,
        codePath: blobs.pathOf(artifact),
        env: fn.spec.env,
        timeoutMs: fn.spec.limits.timeoutMs,
        memoryMb: fn.spec.limits.memoryMb,
      });
      await instance.dispose();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return { ok: false, stage: "load", reason: "LoadFailed", message };
    }
    return { ok: true, artifact, note: built.note };
  }

  /** The artifact of an earlier revision, when only env, limits or scaling changed. */
  private async reuse(artifact: string): Promise<Built | Failed> {
    const bytes = await this.deps.blobs.get(artifact);
    if (bytes === undefined) return { ok: false, stage: "build", reason: "ArtifactMissing", message: `artifact ${artifact} of the previous revision is gone: deploy the source again` };
    return { ok: true, code: Buffer.from(bytes).toString("utf8"), artifact, note: `reused ${artifact.slice(0, 19)}… (the source did not change)` };
  }

  /** Unpacks the source archive and bundles it. */
  private async build(fn: KumoFunction): Promise<Built | Failed> {
    const { blobs, builder } = this.deps;
    const source = await blobs.get(fn.spec.source.digest);
    if (source === undefined) {
      return { ok: false, stage: "source", reason: "SourceNotFound", message: `source archive ${fn.spec.source.digest} was never uploaded: run kumo deploy again` };
    }
    const dir = await mkdtemp(join(tmpdir(), "kumo-build-"));
    let built: Awaited<ReturnType<Builder["buildFunction"]>>;
    try {
      await builder.unpackSource(source, dir);
      const opts: { sourceDir: string; entry?: string; runtime: RuntimeKind } = { sourceDir: dir, runtime: fn.spec.runtime };
      if (fn.spec.entry !== undefined) opts.entry = fn.spec.entry;
      built = await builder.buildFunction(opts);
    } catch (err) {
      const e = err instanceof KumoError ? err : new KumoError("KUMO_E_BUILD_FAILED", String(err));
      const details = e.details.length > 1 ? "\n" + e.details.map((d) => `  ${d.field ?? ""}: ${d.message}`).join("\n") : "";
      return { ok: false, stage: "build", reason: "BuildFailed", message: e.message + details };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const artifact = await blobs.put(Buffer.from(built.code, "utf8"));
    return { ok: true, code: built.code, artifact, note: `built ${built.entry} into ${artifact.slice(0, 19)}… in ${Math.round(built.durationMs)} ms` };
  }

  private async ensureRevision(fn: KumoFunction, artifact: string): Promise<Revision> {
    const want = makeRevision(fn, artifact);
    const existing = await this.deps.store.get("Revision", want.metadata.namespace, want.metadata.name);
    if (existing !== undefined) return existing;
    try {
      return await this.deps.store.create("Revision", want);
    } catch (err) {
      if (err instanceof KumoError && err.code === "KUMO_E_ALREADY_EXISTS") {
        const again = await this.deps.store.get("Revision", want.metadata.namespace, want.metadata.name);
        if (again !== undefined) return again;
      }
      throw err;
    }
  }

  /** Writes status from the freshest object, retrying on conflicts; gives up if the spec moved on. */
  private async writeStatus(fn: KumoFunction, change: (s: FunctionStatus) => FunctionStatus): Promise<void> {
    const { store } = this.deps;
    let current: KumoFunction | undefined = fn;
    for (let attempt = 0; attempt < 10 && current !== undefined; attempt++) {
      if (current.metadata.generation !== fn.metadata.generation) return; // a newer spec will be reconciled
      try {
        await store.updateStatus("Function", { ...current, status: change(current.status) });
        return;
      } catch (err) {
        if (!(err instanceof KumoError) || err.code !== "KUMO_E_CONFLICT") throw err;
        current = await store.get("Function", fn.metadata.namespace, fn.metadata.name);
      }
    }
  }

  private cond(type: Condition["type"], status: Condition["status"], reason: string, message: string): Condition {
    return condition(type, status, reason, message, new Date(this.deps.clock.now()));
  }
}
