// The server's configuration: one schema read from the environment (KUMO_*), with command-line
// overrides. Every bad key is reported at once, and the result is frozen.

import { isIP } from "node:net";
import { defaultAutoscalerConfig, loadAutoscalerConfig, type AutoscalerConfig } from "../autoscaler/index.ts";
import { loadKafkaConfig, type KafkaConfig } from "../bus/index.ts";
import { envInt, KumoError, Problems } from "../model/index.ts";
import { loadOpenStackConfig, type OpenStackConfig } from "../../event-providers/openstack/index.ts";

/** Everything `kumo server` needs to start. */
export interface ServerConfig {
  /** KUMO_HOST: address to listen on. Default 127.0.0.1; any other address requires KUMO_API_TOKEN. */
  readonly host: string;
  /** KUMO_PORT: TCP port for the api and the gateway (0 picks a free one). Default 8080. */
  readonly port: number;
  /** KUMO_DATA_DIR: where the database and artifacts live. Default ./.kumo. */
  readonly dataDir: string;
  /** KUMO_API_TOKEN: bearer token the api requires (function URLs stay public). */
  readonly apiToken: string | undefined;
  /** KUMO_PUBLIC_URL: base of function URLs as users reach them. Default http://<host>:<port>. */
  readonly publicUrl: string | undefined;
  /** KUMO_GATEWAY_MAX_BODY_BYTES: largest request body a function accepts. Default 6 MiB. */
  readonly gatewayMaxBodyBytes: number;
  /** KUMO_QUEUE_LIMIT: requests that may wait per revision for a free instance. Default 1000. */
  readonly queueLimit: number;
  /** KUMO_QUEUE_TIMEOUT_MS: how long a request may wait for a free instance. Default 30000. */
  readonly queueTimeoutMs: number;
  /** KUMO_INVOCATION_RETENTION: invocation records kept per function. Default 1000. */
  readonly invocationRetention: number;
  /** KUMO_API_MAX_SOURCE_BYTES: largest function source upload. Default 50 MiB. */
  readonly maxSourceBytes: number;
  /** KUMO_EVENTS_MAX_BODY_BYTES: largest CloudEvent accepted on POST /events. Default 1 MiB. */
  readonly eventsMaxBodyBytes: number;
  /** KUMO_EVENTS_PARTITIONS: partitions of the embedded bus's kumo.events topic when it is created (Kafka: KUMO_KAFKA_PARTITIONS). Default 8. */
  readonly eventPartitions: number;
  /**
   * KUMO_ISOLATE_DISPATCH: where isolate code runs. "auto" (default): a revision starts on
   * isolated-vm's threads and, after 50 quick invocations, runs on the server's thread, where a
   * synchronous run is stopped after 250 ms (503, not re-run) and the revision goes back to threads
   * for good: a runaway loop stalls the server at most ~250 ms, once per revision. "thread": always
   * on isolated-vm's threads (never stalls the server, more CPU per request). "inline": always on
   * the server's thread, uncapped (fastest; a loop stalls everything until its timeout).
   */
  readonly isolateDispatch: "auto" | "thread" | "inline";
  /** KUMO_AUTOSCALER_*: the autoscaler's global defaults (see services/autoscaler/config.ts). */
  readonly autoscaler: AutoscalerConfig;
  /** KUMO_KAFKA_*: when KUMO_KAFKA_BROKERS is set, the event bus is Kafka instead of the embedded log. */
  readonly kafka: KafkaConfig | undefined;
  /** KUMO_OPENSTACK_*: when KUMO_OPENSTACK_AMQP_URL is set, the OpenStack notification provider runs. */
  readonly openstack: OpenStackConfig | undefined;
}

/** Runs a sub-schema's loader and folds its problems into ours, so every bad key is reported at once. */
function sub<T>(p: Problems, load: () => T, fallback: T): T {
  try {
    return load();
  } catch (err) {
    if (!(err instanceof KumoError)) throw err;
    if (err.details.length === 0) p.add("config", err.message);
    for (const d of err.details) p.add(d.field ?? "config", d.message);
    return fallback;
  }
}

/** Command-line overrides (they win over the environment). */
export interface ServerOverrides {
  host?: string;
  port?: number;
  dataDir?: string;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith("127.");
}


function oneOf<T extends string>(p: Problems, env: Record<string, string | undefined>, key: string, allowed: readonly T[], fallback: T): T {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  if ((allowed as readonly string[]).includes(raw)) return raw as T;
  p.add(key, `"${raw}" is not one of ${allowed.map((a) => `"${a}"`).join(", ")}`);
  return fallback;
}

/** Reads and validates the server configuration. Throws KUMO_E_INVALID_CONFIG listing every problem. */
export function loadServerConfig(env: Record<string, string | undefined>, overrides: ServerOverrides = {}): ServerConfig {
  const p = new Problems();
  const host = overrides.host ?? env.KUMO_HOST ?? "127.0.0.1";
  if (host !== "localhost" && isIP(host) === 0 && !/^[a-zA-Z0-9.-]+$/.test(host)) p.add("KUMO_HOST", `"${host}" is not an address to listen on`);
  const port = overrides.port ?? envInt(p, env, "KUMO_PORT", 8080, 0, 65535);
  if (!Number.isInteger(port) || port < 0 || port > 65535) p.add("--port", `${port} is not a TCP port (0-65535)`);
  const token = env.KUMO_API_TOKEN === "" ? undefined : env.KUMO_API_TOKEN;
  if (token !== undefined && token.length < 16) p.add("KUMO_API_TOKEN", "is shorter than 16 characters: use a long random value, e.g. `openssl rand -hex 32`");
  if (!isLoopback(host) && token === undefined) {
    p.add("KUMO_HOST", `refusing to listen on ${host} without an api token: set KUMO_API_TOKEN (the api then requires it as a bearer token), or listen on 127.0.0.1`);
  }
  const publicUrl = env.KUMO_PUBLIC_URL === "" ? undefined : env.KUMO_PUBLIC_URL;
  if (publicUrl !== undefined && !/^https?:\/\/[^/]+/.test(publicUrl)) p.add("KUMO_PUBLIC_URL", `"${publicUrl}" is not an http(s) URL such as https://fn.example.com`);
  const config: ServerConfig = {
    host,
    port,
    dataDir: overrides.dataDir ?? env.KUMO_DATA_DIR ?? "./.kumo",
    apiToken: token,
    publicUrl: publicUrl?.replace(/\/+$/, ""),
    gatewayMaxBodyBytes: envInt(p, env, "KUMO_GATEWAY_MAX_BODY_BYTES", 6 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    queueLimit: envInt(p, env, "KUMO_QUEUE_LIMIT", 1000, 0, 1_000_000),
    queueTimeoutMs: envInt(p, env, "KUMO_QUEUE_TIMEOUT_MS", 30_000, 1, 3_600_000),
    invocationRetention: envInt(p, env, "KUMO_INVOCATION_RETENTION", 1000, 1, 10_000_000),
    maxSourceBytes: envInt(p, env, "KUMO_API_MAX_SOURCE_BYTES", 50 * 1024 * 1024, 1024, 2 * 1024 * 1024 * 1024),
    eventsMaxBodyBytes: envInt(p, env, "KUMO_EVENTS_MAX_BODY_BYTES", 1024 * 1024, 1024, 256 * 1024 * 1024),
    eventPartitions: envInt(p, env, "KUMO_EVENTS_PARTITIONS", 8, 1, 1024),
    isolateDispatch: oneOf(p, env, "KUMO_ISOLATE_DISPATCH", ["auto", "thread", "inline"] as const, "auto"),
    autoscaler: sub(p, () => loadAutoscalerConfig(env), defaultAutoscalerConfig),
    kafka: env.KUMO_KAFKA_BROKERS === undefined || env.KUMO_KAFKA_BROKERS === "" ? undefined : sub<KafkaConfig | undefined>(p, () => loadKafkaConfig(env), undefined),
    openstack: sub(p, () => loadOpenStackConfig(env), undefined),
  };
  if (p.list.length > 0) {
    throw new KumoError("KUMO_E_INVALID_CONFIG", `invalid server configuration: ${p.list.map((d) => `${d.field}: ${d.message}`).join("; ")}`, { details: p.list });
  }
  return Object.freeze(config);
}
