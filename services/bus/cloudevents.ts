// CloudEvents on the bus in the Kafka protocol binding's binary mode, shared by both buses:
// attributes and extensions in `ce_<name>` headers, datacontenttype in `content-type`, data as
// the record value (raw for strings and bytes, JSON otherwise) and the partition key as the key.

import { KumoError } from "../model/index.ts";
import type { KumoCloudEvent } from "../model/index.ts";
import type { ConsumedRecord, ProducerRecord } from "./bus.ts";

const PREFIX = "ce_";
const CONTENT_TYPE = "content-type";
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** Attributes that travel outside the ce_ headers. */
const NOT_HEADERS = new Set(["data", "data_base64", "datacontenttype"]);

/**
 * Maps a CloudEvent to a bus record. The key is `partitionKey`, else the event's `partitionkey`
 * extension. Non-string attribute values become strings (numbers, booleans; Dates and bytes as
 * ISO time and base64), as they would in any header-based binding.
 */
export function toBusRecord(event: KumoCloudEvent, partitionKey?: string): ProducerRecord {
  const headers: Record<string, string> = {};
  for (const name of Object.keys(event)) {
    const attribute = event[name];
    if (NOT_HEADERS.has(name) || attribute === undefined || attribute === null) continue;
    headers[PREFIX + name] = headerValue(name, attribute);
  }
  const { value, impliedContentType } = encodeData(event);
  const contentType = event.datacontenttype ?? impliedContentType;
  if (contentType !== undefined) headers[CONTENT_TYPE] = contentType;
  const record: ProducerRecord = { value, headers };
  const extensionKey = event["partitionkey"];
  const key = partitionKey ?? (typeof extensionKey === "string" ? extensionKey : undefined);
  if (key !== undefined) record.key = key;
  return record;
}

/**
 * Maps a bus record back to a CloudEvent; KUMO_E_VALIDATION when a required attribute header
 * (ce_specversion 1.0, ce_id, ce_source, ce_type) is missing. Data is parsed as JSON when the
 * content type is JSON (or absent and the value is JSON), text for textual types, else bytes.
 */
export function fromBusRecord(record: ConsumedRecord): KumoCloudEvent {
  const attributes: Record<string, string> = {};
  let contentType: string | undefined;
  for (const [header, value] of Object.entries(record.headers)) {
    const name = header.toLowerCase();
    if (name.startsWith(PREFIX)) {
      const attribute = name.slice(PREFIX.length);
      if (attribute !== "" && !NOT_HEADERS.has(attribute)) attributes[attribute] = value;
    } else if (name === CONTENT_TYPE) {
      contentType = value;
    }
  }
  const { specversion, id, source, type, ...rest } = attributes;
  const where = `bus record ${record.topic}/${record.partition}@${record.offset}`;
  if (specversion !== "1.0") {
    const found = specversion === undefined ? "missing" : `"${specversion}"`;
    throw new KumoError("KUMO_E_VALIDATION", `${where} is not a CloudEvent 1.0: header ce_specversion is ${found}`);
  }
  for (const [name, value] of [["id", id], ["source", source], ["type", type]] as const) {
    if (value === undefined || value === "") {
      throw new KumoError("KUMO_E_VALIDATION", `${where} is not a CloudEvent: header ce_${name} is missing`);
    }
  }
  const event: KumoCloudEvent = { specversion, id: id ?? "", source: source ?? "", type: type ?? "", ...rest };
  if (contentType !== undefined) event.datacontenttype = contentType;
  if (record.value.length > 0) event.data = decodeData(record.value, contentType);
  return event;
}

function headerValue(name: string, value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  throw new KumoError(
    "KUMO_E_VALIDATION",
    `CloudEvent attribute "${name}" is a ${typeof value}: attributes must be strings, numbers, booleans, timestamps or bytes`,
  );
}

function encodeData(event: KumoCloudEvent): { value: Uint8Array; impliedContentType?: string } {
  const data = event.data;
  if (data === undefined) {
    const base64 = event["data_base64"];
    if (typeof base64 === "string") return { value: Buffer.from(base64, "base64"), impliedContentType: "application/octet-stream" };
    return { value: new Uint8Array(0) };
  }
  if (data instanceof Uint8Array) return { value: data, impliedContentType: "application/octet-stream" };
  if (typeof data === "string") {
    // Without a content type the reader guesses JSON first, so a string that would parse as
    // JSON is sent as a JSON string to come back as the same string.
    if (event.datacontenttype === undefined && parsesAsJson(data)) return { value: encoder.encode(JSON.stringify(data)) };
    return { value: encoder.encode(data) };
  }
  return { value: encoder.encode(JSON.stringify(data)) };
}

function decodeData(value: Uint8Array, contentType: string | undefined): unknown {
  const media = contentType?.split(";")[0]?.trim().toLowerCase();
  if (media === undefined || isJson(media)) {
    const text = utf8(value);
    if (text === undefined) return copy(value);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  if (isText(media, contentType ?? "")) return utf8(value) ?? copy(value);
  return copy(value);
}

function isJson(media: string): boolean {
  return media === "application/json" || media === "text/json" || media.endsWith("+json");
}

function isText(media: string, contentType: string): boolean {
  return (
    media.startsWith("text/") ||
    media === "application/xml" ||
    media.endsWith("+xml") ||
    media === "application/javascript" ||
    media === "application/x-www-form-urlencoded" ||
    /;\s*charset=/i.test(contentType)
  );
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function utf8(value: Uint8Array): string | undefined {
  try {
    return decoder.decode(value);
  } catch {
    return undefined;
  }
}

function copy(value: Uint8Array): Uint8Array {
  return new Uint8Array(value);
}
