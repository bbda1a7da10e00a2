// Configuration of the OpenStack notification provider, read from KUMO_OPENSTACK_* environment
// variables. One schema: every bad key is reported at once (KUMO_E_INVALID_CONFIG), the result is
// frozen, and an unset KUMO_OPENSTACK_AMQP_URL means the provider is off.

import { hostname as osHostname } from "node:os";
import { KumoError, type ErrorDetail } from "../../services/model/index.ts";
import { DEFAULT_MAX_PAYLOAD_BYTES } from "./decode.ts";

/** The provider's settings, validated. */
export interface OpenStackConfig {
  /** Broker URL, amqp:// or amqps://, credentials and vhost included. */
  readonly url: string;
  /** TLS files for amqps:// (paths; read when connecting). */
  readonly tls: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string; readonly verify: boolean };
  /** Service exchanges to bind (each service's control_exchange). */
  readonly exchanges: readonly string[];
  /** Notification topics; the queue is bound with `<topic>.*` on each exchange. */
  readonly topics: readonly string[];
  /** This provider's own durable queue. */
  readonly queue: string;
  /** Unacknowledged deliveries at once; a slow bus back-pressures RabbitMQ beyond this. */
  readonly prefetch: number;
  /** Largest notification body accepted; larger ones are dead-lettered. */
  readonly maxPayloadBytes: number;
  /** Reconnect backoff: first delay and cap, in ms (doubling in between). */
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /** Delay before a message the sink could not take is handed back to RabbitMQ, in ms. */
  readonly retryDelayMs: number;
  /** How often the queue depth (lag) is read, in ms. */
  readonly lagIntervalMs: number;
  /** AMQP heartbeat in seconds, so a dead broker is noticed; 0 disables it. */
  readonly heartbeatSeconds: number;
}

type Env = Readonly<Record<string, string | undefined>>;

const NAME = /^[A-Za-z0-9_.:-]+$/;

function list(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** Each key, its default and what it means; the README's configuration table mirrors this. */
export const OPENSTACK_CONFIG_KEYS = {
  /** amqp://user:pass@host:5672/vhost or amqps://...; unset = provider off. */
  KUMO_OPENSTACK_AMQP_URL: "",
  /** CA bundle (PEM) that signs the broker's certificate (amqps only). */
  KUMO_OPENSTACK_AMQP_CA_FILE: "",
  /** Client certificate (PEM) for mutual TLS (amqps only; needs KEY_FILE). */
  KUMO_OPENSTACK_AMQP_CERT_FILE: "",
  /** Client key (PEM) for mutual TLS (amqps only; needs CERT_FILE). */
  KUMO_OPENSTACK_AMQP_KEY_FILE: "",
  /** "false" skips verification of the broker's certificate (testing only). */
  KUMO_OPENSTACK_AMQP_TLS_VERIFY: "true",
  /** Comma-separated exchanges; cinder's default is oslo's "openstack". */
  KUMO_OPENSTACK_EXCHANGES: "nova,neutron,cinder,glance,openstack",
  /** Comma-separated notification topics (nova's versioned ones are versioned_notifications). */
  KUMO_OPENSTACK_TOPICS: "notifications,versioned_notifications",
  /** The provider's own queue; never oslo's shared <topic>.<priority> queues. Default kumo-openstack-<hostname>. */
  KUMO_OPENSTACK_QUEUE: "",
  /** Unacknowledged messages in flight (1-65535). */
  KUMO_OPENSTACK_PREFETCH: "100",
  /** Largest body in bytes (default 1 MiB); larger messages are dead-lettered. */
  KUMO_OPENSTACK_MAX_PAYLOAD_BYTES: String(DEFAULT_MAX_PAYLOAD_BYTES),
  /** First reconnect delay in ms. */
  KUMO_OPENSTACK_RECONNECT_MIN_MS: "500",
  /** Longest reconnect delay in ms. */
  KUMO_OPENSTACK_RECONNECT_MAX_MS: "30000",
  /** Delay in ms before requeueing a message the event bus did not accept. */
  KUMO_OPENSTACK_RETRY_DELAY_MS: "1000",
  /** How often to read the queue depth for health/lag, in ms. */
  KUMO_OPENSTACK_LAG_INTERVAL_MS: "15000",
  /** AMQP heartbeat in seconds (0 = off). */
  KUMO_OPENSTACK_HEARTBEAT_SECONDS: "30",
} as const;

type Key = keyof typeof OPENSTACK_CONFIG_KEYS;

/** Reads the provider's config from `env`; undefined when KUMO_OPENSTACK_AMQP_URL is unset (provider off). */
export function loadOpenStackConfig(env: Env, hostname: string = osHostname()): OpenStackConfig | undefined {
  const raw = (key: Key): string | undefined => {
    const v = env[key]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const url = raw("KUMO_OPENSTACK_AMQP_URL");
  if (url === undefined) return undefined;

  const problems: ErrorDetail[] = [];
  const bad = (field: string, message: string): void => {
    problems.push({ field, message });
  };
  const get = (key: Key): string => raw(key) ?? OPENSTACK_CONFIG_KEYS[key];
  const int = (key: Key, min: number, max: number): number => {
    const text = get(key);
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
      bad(key, `${key}=${JSON.stringify(text)} is not a whole number from ${min} to ${max}`);
      return Number(OPENSTACK_CONFIG_KEYS[key]);
    }
    return n;
  };

  for (const key of Object.keys(env)) {
    if (key.startsWith("KUMO_OPENSTACK_") && !(key in OPENSTACK_CONFIG_KEYS)) {
      bad(key, `unknown setting ${key}: known ones are ${Object.keys(OPENSTACK_CONFIG_KEYS).join(", ")}`);
    }
  }

  let secure = false;
  try {
    const u = new URL(url);
    if (u.protocol !== "amqp:" && u.protocol !== "amqps:") {
      bad("KUMO_OPENSTACK_AMQP_URL", `KUMO_OPENSTACK_AMQP_URL has scheme "${u.protocol}": use amqp:// or amqps://`);
    }
    secure = u.protocol === "amqps:";
    if (u.hostname === "") bad("KUMO_OPENSTACK_AMQP_URL", "KUMO_OPENSTACK_AMQP_URL has no host: use amqp://user:pass@host:5672/vhost");
  } catch {
    bad("KUMO_OPENSTACK_AMQP_URL", "KUMO_OPENSTACK_AMQP_URL is not a URL: use amqp://user:pass@host:5672/vhost");
  }

  const caFile = raw("KUMO_OPENSTACK_AMQP_CA_FILE");
  const certFile = raw("KUMO_OPENSTACK_AMQP_CERT_FILE");
  const keyFile = raw("KUMO_OPENSTACK_AMQP_KEY_FILE");
  const verifyText = get("KUMO_OPENSTACK_AMQP_TLS_VERIFY").toLowerCase();
  if (!["true", "false"].includes(verifyText)) bad("KUMO_OPENSTACK_AMQP_TLS_VERIFY", `KUMO_OPENSTACK_AMQP_TLS_VERIFY=${JSON.stringify(verifyText)}: use true or false`);
  if (!secure && (caFile ?? certFile ?? keyFile) !== undefined) {
    bad("KUMO_OPENSTACK_AMQP_URL", "TLS files are set but KUMO_OPENSTACK_AMQP_URL is not amqps://: use amqps:// or unset the *_FILE settings");
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    bad(certFile === undefined ? "KUMO_OPENSTACK_AMQP_CERT_FILE" : "KUMO_OPENSTACK_AMQP_KEY_FILE", "a client certificate needs both KUMO_OPENSTACK_AMQP_CERT_FILE and KUMO_OPENSTACK_AMQP_KEY_FILE");
  }

  const names = (key: Key): string[] => {
    const items = list(get(key));
    if (items.length === 0) bad(key, `${key} is empty: list at least one name, comma-separated`);
    for (const item of items) if (!NAME.test(item)) bad(key, `${key} entry "${item}" is not an AMQP name: use letters, digits, '_', '.', ':' and '-'`);
    return [...new Set(items)];
  };
  const exchanges = names("KUMO_OPENSTACK_EXCHANGES");
  const topics = names("KUMO_OPENSTACK_TOPICS");

  const queue = raw("KUMO_OPENSTACK_QUEUE") ?? `kumo-openstack-${hostname}`;
  if (!NAME.test(queue) || Buffer.byteLength(queue) > 255) {
    bad("KUMO_OPENSTACK_QUEUE", `KUMO_OPENSTACK_QUEUE "${queue}" is not an AMQP queue name: use up to 255 letters, digits, '_', '.', ':' and '-'`);
  } else if (queue.startsWith("amq.")) {
    bad("KUMO_OPENSTACK_QUEUE", `KUMO_OPENSTACK_QUEUE "${queue}" starts with "amq.", which RabbitMQ reserves`);
  } else if (topics.some((t) => queue.startsWith(`${t}.`))) {
    bad("KUMO_OPENSTACK_QUEUE", `KUMO_OPENSTACK_QUEUE "${queue}" is oslo's shared queue that other consumers (ceilometer) drain: name a queue of Kumo's own`);
  }

  const prefetch = int("KUMO_OPENSTACK_PREFETCH", 1, 65535);
  const maxPayloadBytes = int("KUMO_OPENSTACK_MAX_PAYLOAD_BYTES", 1, 256 * 1024 * 1024);
  const reconnectMinMs = int("KUMO_OPENSTACK_RECONNECT_MIN_MS", 1, 3_600_000);
  const reconnectMaxMs = int("KUMO_OPENSTACK_RECONNECT_MAX_MS", 1, 3_600_000);
  if (reconnectMinMs > reconnectMaxMs) {
    bad("KUMO_OPENSTACK_RECONNECT_MAX_MS", `KUMO_OPENSTACK_RECONNECT_MAX_MS (${reconnectMaxMs}) is below KUMO_OPENSTACK_RECONNECT_MIN_MS (${reconnectMinMs})`);
  }
  const retryDelayMs = int("KUMO_OPENSTACK_RETRY_DELAY_MS", 0, 3_600_000);
  const lagIntervalMs = int("KUMO_OPENSTACK_LAG_INTERVAL_MS", 100, 3_600_000);
  const heartbeatSeconds = int("KUMO_OPENSTACK_HEARTBEAT_SECONDS", 0, 3600);

  if (problems.length > 0) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : "";
    throw new KumoError("KUMO_E_INVALID_CONFIG", `invalid OpenStack provider config: ${problems[0]!.message}${more}`, { details: problems });
  }

  return Object.freeze({
    url,
    tls: Object.freeze({
      ...(caFile === undefined ? {} : { caFile }),
      ...(certFile === undefined ? {} : { certFile }),
      ...(keyFile === undefined ? {} : { keyFile }),
      verify: verifyText === "true",
    }),
    exchanges: Object.freeze(exchanges),
    topics: Object.freeze(topics),
    queue,
    prefetch,
    maxPayloadBytes,
    reconnectMinMs,
    reconnectMaxMs,
    retryDelayMs,
    lagIntervalMs,
    heartbeatSeconds,
  });
}

/** The URL with its password hidden, for logs and health messages. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(invalid url)";
  }
}
