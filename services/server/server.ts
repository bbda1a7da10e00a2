// The embedded composition root: `kumo server` hosts the api, the controller, the gateway, the
// autoscaler, the event bus, the dispatcher and the event providers in one Node process, on one
// port. /apis, /healthz, /readyz and /metrics go to the api; POST /events to the HTTP event
// provider; everything else is a function URL and goes to the gateway.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { createApiApp } from "../api/index.ts";
import { Collector, resolveFunctionScaling, type AutoscalerConfig } from "../autoscaler/index.ts";
import { buildFunction, unpackSource } from "../builder/index.ts";
import { createEmbeddedBus, createKafkaBus, type EventBus } from "../bus/index.ts";
import { Controller } from "../controller/index.ts";
import { Dispatcher, createBusSink, createDispatcherMetrics, ensureEventTopics, getDeadLetter, listDeadLetters, replayDeadLetter } from "../dispatcher/index.ts";
import { createEventInvoker, createGateway, createGatewayMetrics, RouteTable, type RevisionTarget } from "../gateway/index.ts";
import { systemClock, type InstanceBackend, type RuntimeKind, type ScaleSpec } from "../model/index.ts";
import { FileBlobStore, openDatabase, openInvocationLog, openSqliteStore } from "../store/index.ts";
import { CronProvider, HttpEventProvider, createCronMetrics, installCronCheck, type EventProvider } from "../../event-providers/index.ts";
import { OpenStackProvider } from "../../event-providers/openstack/index.ts";
import { createIsolateBackend } from "../../runtime/isolate/index.ts";
import { createProcessBackend } from "../../runtime/process/index.ts";
import type { ServerConfig } from "./config.ts";

/** A running server. */
export interface RunningServer {
  /** Where the api and function URLs are served, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly port: number;
  /** Stops accepting requests, drains in-flight ones, flushes records and closes the database. */
  close(): Promise<void>;
}

function isApiPath(url: string): boolean {
  return url.startsWith("/apis/") || url === "/apis" || url.startsWith("/healthz") || url.startsWith("/readyz") || url.startsWith("/metrics");
}

function isEventsPath(url: string): boolean {
  return url === "/events" || url.startsWith("/events?") || url.startsWith("/events/");
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolveListen((server.address() as AddressInfo).port);
    });
  });
}

/** Exposes a provider's counters (read at scrape time) as Prometheus metrics. */
function providerMetrics(registry: Registry, name: string, provider: OpenStackProvider): void {
  const stats = () => provider.stats();
  const counter = (metric: string, help: string, read: (s: ReturnType<typeof stats>) => number) => {
    let last = 0;
    new Counter({
      name: `kumo_provider_${metric}_total`,
      help,
      labelNames: ["provider"],
      registers: [registry],
      collect() {
        const now = read(stats());
        if (now > last) this.inc({ provider: name }, now - last);
        last = now;
      },
    });
  };
  counter("messages_in", "Source messages received by the provider.", (s) => s.messagesIn);
  counter("messages_decoded", "Source messages decoded into CloudEvents.", (s) => s.decoded);
  counter("messages_failed", "Source messages that could not be decoded (dead-lettered).", (s) => s.failed);
  counter("sink_errors", "Times the bus rejected a batch, which was then requeued at the source.", (s) => s.sinkErrors);
  counter("reconnects", "Reconnections to the provider's source.", (s) => s.reconnects);
  new Gauge({
    name: "kumo_provider_last_message_timestamp_seconds",
    help: "When the provider last received a message.",
    labelNames: ["provider"],
    registers: [registry],
    collect() {
      const t = stats().lastMessageTime; // epoch ms, 0 before the first message
      if (t > 0) this.set({ provider: name }, t / 1000);
    },
  });
  new Gauge({
    name: "kumo_provider_lag_messages",
    help: "Messages waiting at the provider's source.",
    labelNames: ["provider"],
    registers: [registry],
    collect() {
      const lag = provider.health().lag;
      if (lag !== undefined) this.set({ provider: name }, lag);
    },
  });
}

/** The autoscaler loop over every routed revision: samples demand, scales each pool. */
function startAutoscaler(routes: RouteTable, global: AutoscalerConfig, scalingFor: (scale: Partial<ScaleSpec>) => AutoscalerConfig, registry: Registry): Collector {
  const byKey = (): Map<string, RevisionTarget> => {
    const m = new Map<string, RevisionTarget>();
    for (const t of routes.revisionTargets()) m.set(`${t.namespace}/${t.revision}`, t);
    return m;
  };
  let targets = byKey();
  const configs = new Map<string, AutoscalerConfig>();
  const desired = new Gauge({ name: "kumo_autoscaler_desired_instances", help: "Instances the autoscaler wants per revision.", labelNames: ["namespace", "function", "revision"], registers: [registry] });
  const panic = new Gauge({ name: "kumo_autoscaler_panic", help: "1 while a revision's autoscaler is in panic mode.", labelNames: ["namespace", "function", "revision"], registers: [registry] });
  const collector = new Collector({
    clock: systemClock,
    config: global,
    source: () => {
      targets = byKey();
      const m = new Map<string, number>();
      for (const [k, t] of targets) m.set(k, t.pool.takeConcurrencySample());
      for (const k of configs.keys()) if (!targets.has(k)) configs.delete(k);
      return m;
    },
    configFor: (key) => {
      let c = configs.get(key);
      if (c === undefined) {
        const t = targets.get(key);
        c = t === undefined ? global : scalingFor(t.scale);
        configs.set(key, c);
      }
      return c;
    },
    ready: () => {
      const m = new Map<string, number>();
      for (const [k, t] of targets) m.set(k, t.pool.stats().instances);
      return m;
    },
    onDecision: (key, decision) => {
      const t = targets.get(key);
      if (t === undefined) return;
      const labels = { namespace: t.namespace, function: t.function, revision: t.revision };
      desired.set(labels, decision.desired);
      panic.set(labels, decision.panic ? 1 : 0);
      t.pool.scaleTo(decision.desired);
    },
  });
  collector.start();
  return collector;
}

/** Starts everything and resolves once the server answers. */
export async function startServer(config: ServerConfig, log: (line: string) => void = (l) => console.error(l)): Promise<RunningServer> {
  const clock = systemClock;
  const dataDir = resolve(config.dataDir);
  installCronCheck();
  const db = openDatabase(dataDir);
  const store = openSqliteStore({ db });
  const invocations = openInvocationLog({ db, retentionPerFunction: config.invocationRetention });
  const blobs = new FileBlobStore(dataDir);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "kumo_process_" });
  const gatewayMetrics = createGatewayMetrics(registry);
  const isolate = createIsolateBackend({
    dispatch: config.isolateDispatch,
    onDispatchChange: (revision, dispatch, why) => log(`isolate: ${revision} now runs on ${dispatch === "inline" ? "the server's thread" : "isolated-vm's threads"}: ${why}`),
  });
  const processes = createProcessBackend();
  const backends: Record<RuntimeKind, InstanceBackend | undefined> = { isolate, process: processes };
  const logLevel = (level: string, message: string) => log(level === "info" ? message : `${level}: ${message}`);

  /** A revision's autoscaler config; settings that clash with the server's fall back to its defaults. */
  const scalingFor = (scale: Partial<ScaleSpec>): AutoscalerConfig => {
    try {
      return resolveFunctionScaling(config.autoscaler, scale);
    } catch (err) {
      log(`autoscaler: ${err instanceof Error ? err.message : String(err)}; using the server's defaults for that revision`);
      return config.autoscaler;
    }
  };

  let state: "starting" | "ready" | "stopping" = "starting";
  const routes = new RouteTable({
    store,
    blobs,
    backends,
    metrics: gatewayMetrics,
    clock,
    defaults: {
      queueLimit: config.queueLimit,
      queueTimeoutMs: config.queueTimeoutMs,
      bounds: (scale) => {
        const c = scalingFor(scale);
        return { min: c.minScale, max: c.maxScale };
      },
    },
  });

  // Eventing: the bus (embedded log in the same database, or Kafka), the dispatcher, providers.
  const bus: EventBus = config.kafka !== undefined ? createKafkaBus({ ...config.kafka, log: (e) => log(`kafka ${e.level}: ${e.message}`) }) : createEmbeddedBus({ db });
  await ensureEventTopics(bus, { eventPartitions: config.kafka?.partitions ?? config.eventPartitions });
  const sink = createBusSink(bus);
  const dispatcher = new Dispatcher({ bus, store, invoker: createEventInvoker(routes, invocations), metrics: createDispatcherMetrics(registry), clock, log: (l, m) => logLevel(l, `dispatcher: ${m}`) });
  const httpEvents = new HttpEventProvider({ maxBodyBytes: config.eventsMaxBodyBytes });
  const cron = new CronProvider({ store, db, metrics: createCronMetrics(registry), clock, log: (l, m) => logLevel(l, `cron: ${m}`) });
  const providers: EventProvider[] = [httpEvents, cron];
  if (config.openstack !== undefined) {
    const openstack = new OpenStackProvider(config.openstack, { clock, log: (l, m) => logLevel(l, `openstack: ${m}`) });
    providerMetrics(registry, "openstack", openstack);
    providers.push(openstack);
  }

  let baseUrl = "";
  const shutdown = new AbortController();
  /** Checks added once their component starts. */
  const readiness: Record<string, () => { ok: boolean; message: string }> = {};
  const functionUrl = (ns: string, fn: string): string => `${baseUrl}/${ns}/${fn}`;
  const api = createApiApp({
    store,
    blobs,
    invocations,
    metrics: registry,
    ...(config.apiToken !== undefined ? { token: config.apiToken } : {}),
    maxSourceBytes: config.maxSourceBytes,
    signal: shutdown.signal,
    gatewayUrl: functionUrl,
    serving: (ns, fn) => {
      const out = [];
      for (const t of routes.revisionTargets()) if (t.namespace === ns && t.function === fn) out.push(t.pool.stats());
      return out;
    },
    deadLetters: {
      // Letters of this namespace's triggers, plus providers' letters (undecodable source
      // messages belong to no namespace, and an operator looking for lost events wants them).
      async list(namespace, options) {
        if (options.trigger !== undefined) return listDeadLetters(bus, { namespace, trigger: options.trigger, ...(options.limit !== undefined ? { limit: options.limit } : {}) });
        const all = await listDeadLetters(bus, options.limit !== undefined ? { limit: options.limit } : {});
        return all.filter((e) => e.letter.trigger === undefined || e.letter.trigger.namespace === namespace);
      },
      async replay(namespace, which) {
        const entries = Array.isArray(which)
          ? await Promise.all(which.map((id) => getDeadLetter(bus, id)))
          : (await listDeadLetters(bus, { namespace, limit: Number.MAX_SAFE_INTEGER, ...(which.trigger !== undefined ? { trigger: which.trigger } : {}) })).filter((e) => e.letter.event !== undefined);
        for (const e of entries) await replayDeadLetter(bus, e);
        return { replayed: entries.length };
      },
    },
    ready: () => {
      const checks: Record<string, { ok: boolean; message: string }> = {
        server: { ok: state === "ready", message: state },
        store: { ok: true, message: `sqlite at ${dataDir}` },
        bus: { ok: true, message: config.kafka !== undefined ? `kafka at ${config.kafka.brokers.join(",")}` : "embedded log" },
      };
      for (const [name, check] of Object.entries(readiness)) checks[name] = check();
      for (const p of providers) {
        const h = p.health();
        checks[`provider/${p.name}`] = { ok: h.ready, message: h.message + (h.lag !== undefined ? ` (lag ${h.lag})` : "") };
      }
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    },
  });
  const gateway = createGateway({ routes, invocations, metrics: gatewayMetrics, options: { maxBodyBytes: config.gatewayMaxBodyBytes } });
  const events = (req: IncomingMessage, res: ServerResponse) => void httpEvents.handler(req, res);

  const server = createServer({ keepAliveTimeout: 65_000 }, (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? "/";
    if (state === "stopping") res.shouldKeepAlive = false; // let keep-alive clients go while draining
    if (isApiPath(url)) api(req, res);
    else if (isEventsPath(url)) events(req, res);
    else gateway(req, res);
  });
  const port = await listen(server, config.port, config.host);
  const shownHost = config.host.includes(":") ? `[${config.host}]` : config.host;
  baseUrl = config.publicUrl ?? `http://${shownHost}:${port}`;

  const controller = new Controller({
    store,
    blobs,
    builder: { buildFunction, unpackSource },
    backends,
    clock,
    functionUrl,
    routed: (ns, fn, rev) => routes.whenRouted(ns, fn, rev),
    log,
  });
  await routes.start();
  await controller.start();
  const autoscaler = startAutoscaler(routes, config.autoscaler, scalingFor, registry);
  // Joining a Kafka consumer group can take a session timeout after a crash: serve meanwhile,
  // and report the dispatcher as not ready in /readyz until it has joined.
  let dispatcherState = "joining the consumer group";
  const dispatcherStarted = dispatcher.start().then(
    () => void (dispatcherState = "running"),
    (err: unknown) => {
      dispatcherState = `failed to start: ${err instanceof Error ? err.message : String(err)}`;
      log(`dispatcher ${dispatcherState}`);
    },
  );
  readiness.dispatcher = () => ({ ok: dispatcherState === "running", message: dispatcherState });
  for (const p of providers) await p.start(sink);
  state = "ready";

  let closing: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    close() {
      closing ??= (async () => {
        state = "stopping";
        shutdown.abort(); // ends `kumo logs --follow` streams
        const closed = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        for (const p of providers) await p.stop();
        autoscaler.stop();
        await controller.stop();
        await dispatcherStarted;
        await dispatcher.stop();
        await routes.stop();
        // Clients that keep a connection busy get 10 s, then are cut off.
        const force = setTimeout(() => server.closeAllConnections(), 10_000);
        force.unref();
        await closed;
        clearTimeout(force);
        await bus.close();
        await isolate.close();
        await processes.close();
        await invocations.close();
        await store.close();
        db.close();
      })();
      return closing;
    },
  };
}
