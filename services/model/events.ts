// CloudEvents as plain data, the form events take between providers, the bus and the
// dispatcher (the `cloudevents` SDK is used at the edges to parse and validate them).

/** A CloudEvent 1.0 as a plain object; extensions are lowercase alphanumeric attributes. */
export interface KumoCloudEvent {
  specversion: "1.0";
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  datacontenttype?: string;
  dataschema?: string;
  data?: unknown;
  [extension: string]: unknown;
}

/** The bus topic all providers publish events to. */
export const EVENTS_TOPIC = "kumo.events";
/** The dead-letter topic: undeliverable events and undecodable source messages. */
export const DLQ_TOPIC = "kumo.dlq";

/** A dead letter: what could not be delivered or decoded, why, and every attempt. */
export interface DeadLetter {
  /** Where it came from: "dispatcher", "provider/openstack", "provider/http", ... */
  origin: string;
  reason: string;
  /** The event, when there was one. */
  event?: KumoCloudEvent;
  /** The raw source message (for undecodable input), as text or base64. */
  raw?: string;
  rawEncoding?: "utf8" | "base64";
  trigger?: { namespace: string; name: string; function: string };
  attempts?: { at: string; error: string }[];
  /** Extra facts about the source (exchange, routing key, ...). */
  meta?: Record<string, string>;
  time: string;
}

/**
 * The extension that addresses an event to one trigger (`<namespace>/<name>`): cron fires and
 * dead-letter replays carry it, and the dispatcher delivers such an event to that trigger only.
 */
export const TRIGGER_EXTENSION = "kumotrigger";
/** The type of the event a cron trigger fires; its `time` is the scheduled time. */
export const CRON_FIRED_TYPE = "dev.kumo.cron.fired";
/** The type of the event reporting fires a cron trigger missed while Kumo was down. */
export const CRON_MISSED_TYPE = "dev.kumo.cron.missed";
