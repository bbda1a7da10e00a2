import { CloudEvent, Kafka } from "cloudevents";
import type { KafkaMessage } from "cloudevents";
import { describe, expect, it } from "vitest";
import { KumoError } from "../model/index.ts";
import type { KumoCloudEvent } from "../model/index.ts";
import type { ConsumedRecord, ProducerRecord } from "./bus.ts";
import { fromBusRecord, toBusRecord } from "./cloudevents.ts";

/** What a consumer would see after `record` went through a bus. */
function consumed(record: ProducerRecord): ConsumedRecord {
  const out: ConsumedRecord = {
    topic: "kumo.events",
    partition: 0,
    offset: "7",
    value: record.value,
    headers: record.headers ?? {},
    timestamp: 1,
  };
  if (record.key !== undefined) out.key = record.key;
  return out;
}

function roundTrip(event: KumoCloudEvent): KumoCloudEvent {
  return fromBusRecord(consumed(toBusRecord(event)));
}

function event(overrides: Partial<KumoCloudEvent> = {}): KumoCloudEvent {
  return {
    specversion: "1.0",
    id: "9a8f-1",
    source: "openstack/nova/compute-1",
    type: "org.openstack.nova.instance.create.end",
    ...overrides,
  };
}

describe("CloudEvents binary mode on the bus", () => {
  it("puts attributes and extensions in ce_ headers and JSON data in the value", () => {
    const e = event({
      subject: "6f70656e-7374-6163-6b00-000000000001",
      time: "2024-05-01T10:00:00.123Z",
      datacontenttype: "application/json",
      dataschema: "https://example.test/schema",
      project: "p-42",
      priority: "INFO",
      data: { instance_id: "i-1", state: "active", nested: { n: 1, list: [1, "two", null] } },
    });
    const record = toBusRecord(e);
    expect(record.headers).toEqual({
      ce_specversion: "1.0",
      ce_id: "9a8f-1",
      ce_source: "openstack/nova/compute-1",
      ce_type: "org.openstack.nova.instance.create.end",
      ce_subject: "6f70656e-7374-6163-6b00-000000000001",
      ce_time: "2024-05-01T10:00:00.123Z",
      ce_dataschema: "https://example.test/schema",
      ce_project: "p-42",
      ce_priority: "INFO",
      "content-type": "application/json",
    });
    expect(JSON.parse(new TextDecoder().decode(record.value))).toEqual(e.data);
    expect(record.key).toBeUndefined();
    expect(fromBusRecord(consumed(record))).toEqual(e);
  });

  it("round-trips JSON data without a datacontenttype", () => {
    for (const data of [{ a: 1 }, [1, 2], 42, true, null]) {
      const e = event({ data });
      expect(toBusRecord(e).headers?.["content-type"]).toBeUndefined();
      expect(roundTrip(e)).toEqual(e);
    }
  });

  it("sends string data raw and gets the same string back, even when it looks like JSON", () => {
    const text = event({ datacontenttype: "text/plain; charset=utf-8", data: "héllo ☁" });
    expect(new TextDecoder().decode(toBusRecord(text).value)).toBe("héllo ☁");
    expect(roundTrip(text)).toEqual(text);
    for (const data of ["plain words", '{"a":1}', "42", "null"]) {
      const e = event({ data });
      expect(roundTrip(e)).toEqual(e);
    }
    const xml = event({ datacontenttype: "application/xml", data: "<a>1</a>" });
    expect(roundTrip(xml)).toEqual(xml);
  });

  it("sends binary data raw and gets bytes back", () => {
    const bytes = Uint8Array.from([0, 1, 2, 254, 255]);
    const e = event({ datacontenttype: "application/octet-stream", data: bytes });
    const record = toBusRecord(e);
    expect(Array.from(record.value)).toEqual([0, 1, 2, 254, 255]);
    const back = fromBusRecord(consumed(record));
    expect(back.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(back.data as Uint8Array)).toEqual([0, 1, 2, 254, 255]);

    // Without a datacontenttype, bytes are labelled as octets so the reader does not guess JSON.
    const unlabelled = toBusRecord(event({ data: Uint8Array.from([123, 125]) }));
    expect(unlabelled.headers?.["content-type"]).toBe("application/octet-stream");
    expect(fromBusRecord(consumed(unlabelled)).data).toBeInstanceOf(Uint8Array);

    const base64 = fromBusRecord(consumed(toBusRecord(event({ data_base64: Buffer.from([9, 8, 7]).toString("base64") }))));
    expect(Array.from(base64.data as Uint8Array)).toEqual([9, 8, 7]);
  });

  it("maps an event without data to an empty value and back", () => {
    const e = event({ subject: "s" });
    const record = toBusRecord(e);
    expect(record.value.length).toBe(0);
    expect(roundTrip(e)).toEqual(e);
    expect("data" in roundTrip(e)).toBe(false);
  });

  it("uses the partition key argument, else the partitionkey extension, as the record key", () => {
    expect(toBusRecord(event(), "vm-1").key).toBe("vm-1");
    expect(toBusRecord(event({ partitionkey: "vm-2" })).key).toBe("vm-2");
    expect(toBusRecord(event({ partitionkey: "vm-2" }), "vm-3").key).toBe("vm-3");
    expect(toBusRecord(event({ partitionkey: "vm-2" })).headers?.["ce_partitionkey"]).toBe("vm-2");
  });

  it("writes non-string attributes as strings and refuses objects", () => {
    const record = toBusRecord(event({ attempt: 3, replay: false, at: new Date(Date.UTC(2024, 0, 2)) }));
    expect(record.headers?.["ce_attempt"]).toBe("3");
    expect(record.headers?.["ce_replay"]).toBe("false");
    expect(record.headers?.["ce_at"]).toBe("2024-01-02T00:00:00.000Z");
    expect(() => toBusRecord(event({ nested: { a: 1 } }))).toThrow(/attribute "nested"/);
  });

  it("rejects a record that is not a CloudEvent with a validation error naming the header", () => {
    const good = toBusRecord(event());
    const withoutId = { ...good.headers };
    delete withoutId["ce_id"];
    const err = (() => {
      try {
        fromBusRecord(consumed({ ...good, headers: withoutId }));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(KumoError);
    expect((err as KumoError).code).toBe("KUMO_E_VALIDATION");
    expect((err as KumoError).message).toMatch(/ce_id is missing/);
    expect(() => fromBusRecord(consumed({ ...good, headers: { ...good.headers, ce_specversion: "0.3" } }))).toThrow(/"0.3"/);
    expect(() => fromBusRecord(consumed({ value: new Uint8Array(0), headers: {} }))).toThrow(/ce_specversion is missing/);
  });

  it("keeps malformed JSON data as text instead of throwing", () => {
    const record = toBusRecord(event({ datacontenttype: "application/json", data: "{not json" }));
    expect(fromBusRecord(consumed(record)).data).toBe("{not json");
  });

  it("reads header names case-insensitively", () => {
    const record = toBusRecord(event({ datacontenttype: "application/json", data: { a: 1 } }));
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(record.headers ?? {})) headers[k.toUpperCase()] = v;
    expect(fromBusRecord(consumed({ ...record, headers }))).toEqual(event({ datacontenttype: "application/json", data: { a: 1 } }));
  });

  it("agrees with the CloudEvents SDK's Kafka binding", () => {
    const e = event({
      subject: "i-1",
      time: "2024-05-01T10:00:00.123Z",
      datacontenttype: "application/json",
      project: "p-42",
      data: { a: 1 },
    });
    const record = toBusRecord(e, "i-1");
    const message: KafkaMessage<Buffer> = {
      headers: record.headers ?? {},
      key: record.key ?? "",
      value: Buffer.from(record.value),
      body: Buffer.from(record.value),
      timestamp: "1",
    };
    const sdk = Kafka.toEvent(message) as CloudEvent<unknown>;
    expect(sdk.id).toBe(e.id);
    expect(sdk.type).toBe(e.type);
    expect(sdk.source).toBe(e.source);
    expect(sdk.subject).toBe("i-1");
    expect(sdk["project"]).toBe("p-42");
    expect(sdk.datacontenttype).toBe("application/json");
    // And what we decode is a valid event for the SDK.
    expect(new CloudEvent(fromBusRecord(consumed(record))).validate()).toBe(true);
  });
});
