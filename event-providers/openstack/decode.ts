// Turns one oslo.messaging notification, as it arrives from RabbitMQ, into a Kumo CloudEvent.
// Pure: no I/O and no clock. Accepts the v2 envelope and the bare (v1) message, legacy and
// versioned notifications, and kombu-compressed bodies; anything else gets a reason.

import { createHash } from "node:crypto";
import { brotliDecompressSync, unzipSync, zstdDecompressSync } from "node:zlib";
import type { KumoCloudEvent } from "../../services/model/index.ts";

/** The AMQP facts about a delivery that decoding looks at. */
export interface NotificationProperties {
  contentType?: string | undefined;
  contentEncoding?: string | undefined;
  headers?: Readonly<Record<string, unknown>> | undefined;
  exchange: string;
  routingKey: string;
}

/** Limits for decoding. */
export interface DecodeOptions {
  /** Largest body accepted, compressed or not (default 1 MiB). */
  maxPayloadBytes?: number;
}

/** Either the event and its partition key, or why the message could not be decoded. */
export type DecodeResult = { ok: true; event: KumoCloudEvent; partitionKey: string } | { ok: false; reason: string };

/** Default body size limit: 1 MiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/**
 * Which OpenStack service emitted a notification, from the head of its publisher_id: the
 * legacy form is `<head>.<host>` (nova `compute.host`), the versioned one `<binary>:<host>`
 * (`nova-compute:host`, whose binary's prefix before "-" names the service).
 */
export const PUBLISHER_SERVICES: Readonly<Record<string, string>> = {
  compute: "nova",
  conductor: "nova",
  scheduler: "nova",
  network: "neutron",
  volume: "cinder",
  snapshot: "cinder",
  backup: "cinder",
  image: "glance",
  identity: "keystone",
  orchestration: "heat",
  dns: "designate",
  baremetal: "ironic",
  "ironic-conductor": "ironic",
  "ironic-api": "ironic",
  share: "manila",
  objectstorage: "swift",
  magnum: "magnum",
  trove: "trove",
};

/**
 * Which service an exchange belongs to, used when the publisher_id names none. `openstack` is
 * oslo's default control_exchange, which cinder publishes to unless configured otherwise.
 */
export const EXCHANGE_SERVICES: Readonly<Record<string, string>> = {
  nova: "nova",
  neutron: "neutron",
  cinder: "cinder",
  openstack: "cinder",
  glance: "glance",
  keystone: "keystone",
  heat: "heat",
  designate: "designate",
  dns: "designate",
  ironic: "ironic",
  manila: "manila",
  swift: "swift",
  magnum: "magnum",
  trove: "trove",
  octavia: "octavia",
};

const KNOWN_SERVICES = new Set([...Object.values(PUBLISHER_SERVICES), ...Object.values(EXCHANGE_SERVICES)]);

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function text(v: unknown): string | undefined {
  if (typeof v === "string" && v !== "") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

function first(...values: unknown[]): string | undefined {
  for (const v of values) {
    const t = text(v);
    if (t !== undefined) return t;
  }
  return undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Undoes kombu's `compression` header; node:zlib covers zlib/gzip, brotli and zstd (not bz2 or lzma). */
function decompress(body: Buffer, compression: string, limit: number): Buffer | string {
  const kind = compression.toLowerCase();
  const opts = { maxOutputLength: limit + 1 };
  try {
    // kombu's "application/x-gzip" is zlib.compress output; unzip accepts zlib and gzip headers.
    if (["application/x-gzip", "application/gzip", "gzip", "zlib", "application/zlib", "deflate"].includes(kind)) return unzipSync(body, opts);
    if (["application/x-brotli", "brotli", "br"].includes(kind)) return brotliDecompressSync(body, opts);
    if (["application/zstd", "application/x-zstd", "zstd"].includes(kind)) return zstdDecompressSync(body, opts);
  } catch (err) {
    if (err instanceof RangeError) return `payload too large: decompresses to more than ${limit} bytes > limit`;
    return `body does not decompress as ${compression}: ${errorText(err)}`;
  }
  return `unsupported compression "${compression}": use zlib/gzip, brotli or zstd (or none)`;
}

/** oslo's naive UTC `2012-10-29 13:42:11.123456` (or an ISO form) as RFC 3339 UTC. */
export function rfc3339(timestamp: string): string | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/i.exec(timestamp.trim());
  if (m === null) return undefined;
  const [, date, clock, fraction = "", zone] = m;
  if (zone === undefined || zone.toUpperCase() === "Z" || /^[+-]00:?00$/.test(zone)) {
    const candidate = `${date}T${clock}${fraction}Z`;
    return Number.isNaN(Date.parse(candidate)) ? undefined : candidate;
  }
  const ms = Date.parse(`${date}T${clock}${fraction}${zone.includes(":") ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`}`);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

/** Characters a URI path segment may hold unescaped (RFC 3986 pchar), so the source stays a URI-reference. */
function pathSegment(s: string): string {
  return s.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@]/gu, (c) => encodeURIComponent(c));
}

/** Splits a publisher_id into the service it names (if any) and the host. */
function publisher(publisherId: string | undefined): { service?: string; host: string } {
  if (publisherId === undefined) return { host: "unknown" };
  const colon = publisherId.indexOf(":");
  if (colon > 0) {
    const binary = publisherId.slice(0, colon);
    const host = publisherId.slice(colon + 1) || "unknown";
    const mapped = PUBLISHER_SERVICES[binary];
    if (mapped !== undefined) return { service: mapped, host };
    const prefix = binary.split("-")[0] ?? "";
    return KNOWN_SERVICES.has(prefix) ? { service: prefix, host } : { host };
  }
  const dot = publisherId.indexOf(".");
  if (dot < 0) {
    const mapped = PUBLISHER_SERVICES[publisherId];
    return mapped === undefined ? { host: publisherId } : { service: mapped, host: "unknown" };
  }
  const mapped = PUBLISHER_SERVICES[publisherId.slice(0, dot)];
  const host = publisherId.slice(dot + 1) || "unknown";
  return mapped === undefined ? { host } : { service: mapped, host };
}

/**
 * The service and the event name in the CloudEvent type. Nova's legacy names carry a
 * `compute.` prefix its versioned names lack (`compute.instance.create.end` and
 * `instance.create.end`); dropping it gives both the one type org.openstack.nova.instance.create.end.
 */
function classify(eventType: string, publisherService: string | undefined, exchange: string): { service: string; event: string } {
  if (eventType.startsWith("compute.instance.") || (publisherService === "nova" && eventType.startsWith("compute."))) {
    return { service: "nova", event: eventType.slice("compute.".length) };
  }
  const service = publisherService ?? EXCHANGE_SERVICES[exchange] ?? (/^[a-z0-9_-]+$/.test(exchange) ? exchange : "openstack");
  return { service, event: eventType };
}

/** The id of the resource a notification is about, looked up by the event's first word. */
function resourceId(event: string, payload: unknown): string | undefined {
  if (!isRecord(payload)) return undefined;
  const versioned = payload["nova_object.data"];
  if (isRecord(versioned)) return first(versioned["uuid"], versioned["id"], versioned["name"]);
  const resource = event.split(".")[0] ?? "";
  const nested = payload[resource];
  return first(
    payload[`${resource}_id`],
    isRecord(nested) ? nested["id"] : undefined,
    payload["resource_id"],
    payload["instance_id"],
    payload["id"],
  );
}

/** The project and user owning the resource: payload first (the owner), then the request context (the caller). */
function owner(event: string, payload: unknown, inner: Json): { project?: string; user?: string } {
  let fromPayload: Json = {};
  if (isRecord(payload)) {
    const versioned = payload["nova_object.data"];
    const nested = payload[event.split(".")[0] ?? ""];
    fromPayload = isRecord(versioned) ? versioned : { ...(isRecord(nested) ? nested : {}), ...payload };
  }
  const project = first(
    fromPayload["tenant_id"],
    fromPayload["project_id"],
    inner["_context_project_id"],
    inner["_context_tenant_id"],
    inner["_context_tenant"],
    inner["_context_project"],
  );
  const user = first(fromPayload["user_id"], inner["_context_user_id"], inner["_context_user"]);
  return { ...(project === undefined ? {} : { project }), ...(user === undefined ? {} : { user }) };
}

/** Decodes one delivery into a CloudEvent, or says why it cannot be. */
export function decodeNotification(body: Buffer, props: NotificationProperties, options: DecodeOptions = {}): DecodeResult {
  const limit = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (body.length > limit) return { ok: false, reason: `payload too large: ${body.length} bytes > limit of ${limit} bytes` };

  const contentType = props.contentType?.toLowerCase();
  if (contentType !== undefined && contentType !== "" && !contentType.includes("json")) {
    return { ok: false, reason: `unsupported content type "${props.contentType}": oslo.messaging notifications are application/json` };
  }
  const encoding = props.contentEncoding?.toLowerCase();
  if (encoding !== undefined && encoding !== "" && !["utf-8", "utf8", "binary"].includes(encoding)) {
    return { ok: false, reason: `unsupported content encoding "${props.contentEncoding}": expected utf-8` };
  }

  let bytes = body;
  const compression = text(props.headers?.["compression"]);
  if (compression !== undefined) {
    const out = decompress(body, compression, limit);
    if (typeof out === "string") return { ok: false, reason: out };
    if (out.length > limit) return { ok: false, reason: `payload too large: ${out.length} bytes > limit of ${limit} bytes` };
    bytes = out;
  }

  let outer: unknown;
  try {
    outer = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    return { ok: false, reason: `body is not JSON: ${errorText(err)}` };
  }
  if (!isRecord(outer)) return { ok: false, reason: "body is not a JSON object" };

  let inner: Json = outer;
  if ("oslo.message" in outer || "oslo.version" in outer) {
    const version = outer["oslo.version"];
    if (typeof version !== "string" || version.split(".")[0] !== "2") {
      return { ok: false, reason: `unsupported oslo envelope version ${JSON.stringify(version)}: expected 2.x` };
    }
    const message = outer["oslo.message"];
    if (typeof message !== "string") return { ok: false, reason: "oslo.message is not a JSON string" };
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch (err) {
      return { ok: false, reason: `oslo.message is not valid JSON: ${errorText(err)}` };
    }
    if (!isRecord(parsed)) return { ok: false, reason: "oslo.message is not a JSON object" };
    inner = parsed;
  }

  const eventType = inner["event_type"];
  if (typeof eventType !== "string" || eventType === "") return { ok: false, reason: "missing event_type" };
  if (!("payload" in inner)) return { ok: false, reason: `missing payload in ${eventType} notification` };
  const payload = inner["payload"];

  const pub = publisher(text(inner["publisher_id"]));
  const { service, event } = classify(eventType, pub.service, props.exchange);
  const subject = resourceId(event, payload);
  const { project, user } = owner(event, payload, inner);
  const versioned = isRecord(payload) && isRecord(payload["nova_object.data"]);
  const requestId = first(inner["_context_request_id"], versioned ? (payload["nova_object.data"] as Json)["request_id"] : undefined);
  const priority = text(inner["priority"])?.toLowerCase() ?? props.routingKey.split(".").pop();
  const timestamp = text(inner["timestamp"]);
  const time = timestamp === undefined ? undefined : rfc3339(timestamp);
  // Redelivery of a message without message_id must yield the same id, so the bus can dedupe.
  const id = text(inner["message_id"]) ?? `sha256:${createHash("sha256").update(body).digest("hex")}`;

  const type = `org.openstack.${service}.${event}`;
  const ce: KumoCloudEvent = {
    specversion: "1.0",
    id,
    source: `openstack/${service}/${pathSegment(pub.host)}`,
    type,
    ...(subject === undefined ? {} : { subject }),
    ...(time === undefined ? {} : { time }),
    datacontenttype: "application/json",
    data: payload,
    openstackeventtype: eventType,
    openstackformat: versioned ? "versioned" : "legacy",
    ...(priority === undefined || priority === "" ? {} : { openstackpriority: priority }),
    ...(project === undefined ? {} : { openstackproject: project }),
    ...(user === undefined ? {} : { openstackuser: user }),
    ...(requestId === undefined ? {} : { openstackrequestid: requestId }),
  };
  return { ok: true, event: ce, partitionKey: subject ?? type };
}
