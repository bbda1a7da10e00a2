import { describe, expect, it } from "vitest";
import { deflateSync, gzipSync } from "node:zlib";
import { CloudEvent } from "cloudevents";
import { decodeNotification, rfc3339, type DecodeResult, type NotificationProperties } from "./decode.ts";
import { EXPECTED, expectedTime, fixtureFiles, readFixture, wireFixtures } from "./wire-fixtures.ts";
import type { KumoCloudEvent } from "../../services/model/index.ts";

const props = (over: Partial<NotificationProperties> = {}): NotificationProperties => ({
  exchange: "nova",
  routingKey: "notifications.info",
  contentType: "application/json",
  contentEncoding: "utf-8",
  ...over,
});

function decoded(result: DecodeResult): { event: KumoCloudEvent; partitionKey: string } {
  if (!result.ok) throw new Error(`expected an event, got reason: ${result.reason}`);
  return result;
}

function reason(result: DecodeResult): string {
  if (result.ok) throw new Error(`expected a failure, got ${result.event.type}`);
  return result.reason;
}

const envelope = (inner: unknown): Buffer => Buffer.from(JSON.stringify({ "oslo.version": "2.0", "oslo.message": JSON.stringify(inner) }));

describe("decodeNotification: every wire fixture", () => {
  const fixtures = wireFixtures();

  it("covers all 45 fixtures and every one has an expectation", () => {
    expect(fixtures).toHaveLength(45);
    expect(fixtures.map((f) => f.file).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const fx of fixtures) {
    it(fx.file, () => {
      const [type, source, subject, project] = EXPECTED[fx.file]!;
      const { event, partitionKey } = decoded(
        decodeNotification(fx.body, {
          exchange: fx.exchange,
          routingKey: fx.routingKey,
          contentType: fx.properties.content_type,
          contentEncoding: fx.properties.content_encoding,
        }),
      );
      const inner = fx.inner;
      expect(event.type).toBe(type);
      expect(event.source).toBe(source);
      expect(event.subject).toBe(subject ?? undefined);
      expect(partitionKey).toBe(subject ?? type);
      expect(event.id).toBe(inner["message_id"]);
      expect(event.time).toBe(expectedTime(inner["timestamp"] as string));
      expect(event.datacontenttype).toBe("application/json");
      expect(event.data).toEqual(inner["payload"]);
      expect(event["openstackproject"]).toBe(project);
      expect(event["openstackeventtype"]).toBe(inner["event_type"]);
      expect(event["openstackpriority"]).toBe((inner["priority"] as string).toLowerCase());
      expect(event["openstackformat"]).toBe(fx.file.startsWith("versioned_") ? "versioned" : "legacy");
      expect(event["openstackrequestid"]).toBe(inner["_context_request_id"]);
      for (const key of Object.keys(event)) expect(key).toMatch(/^[a-z0-9]+$/);
      // The CloudEvents SDK accepts it as a valid 1.0 event.
      expect(new CloudEvent(event, true).validate()).toBe(true);
    });
  }

  it("the users of versioned and legacy nova events come from the payload", () => {
    const byFile = new Map(fixtures.map((f) => [f.file, f]));
    const versioned = byFile.get("versioned_instance-create-end.json")!;
    const legacy = byFile.get("legacy_designate_compute.instance.create.end.json")!;
    expect(decoded(decodeNotification(versioned.body, props({ routingKey: versioned.routingKey }))).event["openstackuser"]).toBe("fake");
    expect(decoded(decodeNotification(legacy.body, props())).event["openstackuser"]).toBe("953f8394fa044302b7d42f47228e427d");
  });
});

describe("decodeNotification: bare legacy messages (messaging v1 driver, no envelope)", () => {
  const wire = new Map(wireFixtures().map((f) => [f.file, f]));
  for (const service of ["nova", "neutron"]) {
    for (const file of fixtureFiles(`legacy/designate/${service}`)) {
      it(`${service}/${file} decodes like its enveloped form`, () => {
        const bare = Buffer.from(JSON.stringify(readFixture(`legacy/designate/${service}/${file}`)));
        const fx = wire.get(`legacy_designate_${file}`)!;
        const fromBare = decoded(decodeNotification(bare, props({ exchange: fx.exchange })));
        const fromWire = decoded(decodeNotification(fx.body, props({ exchange: fx.exchange })));
        expect(fromBare).toEqual(fromWire);
        expect(fromBare.event.type).toBe(EXPECTED[`legacy_designate_${file}`]![0]);
      });
    }
  }
});

describe("decodeNotification: versioned samples without message_id or timestamp (resolved/)", () => {
  for (const file of fixtureFiles("resolved")) {
    it(file, () => {
      const sample = readFixture(`resolved/${file}`) as { event_type: string; payload: { "nova_object.data": { uuid: string } } };
      const body = envelope(sample);
      const a = decoded(decodeNotification(body, props({ routingKey: "versioned_notifications.info" })));
      const b = decoded(decodeNotification(Buffer.from(body), props({ routingKey: "versioned_notifications.info" })));
      expect(a.event.type).toBe(`org.openstack.nova.${sample.event_type}`);
      expect(a.event.subject).toBe(sample.payload["nova_object.data"].uuid);
      expect(a.event.data).toEqual(sample.payload);
      expect(a.event["openstackformat"]).toBe("versioned");
      expect(a.event.time).toBeUndefined();
      // No message_id: the id is a hash of the body, the same on every redelivery.
      expect(a.event.id).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(b.event.id).toBe(a.event.id);
    });
  }
});

describe("decodeNotification: legacy and versioned names map to one type", () => {
  const cases: [string, string, string][] = [
    ["legacy/designate/nova/compute.instance.create.end.json", "resolved/instance-create-end.json", "org.openstack.nova.instance.create.end"],
    ["legacy/designate/nova/compute.instance.delete.start.json", "resolved/instance-delete-start.json", "org.openstack.nova.instance.delete.start"],
    ["legacy/designate/nova/compute.instance.shutdown.end.json", "resolved/instance-shutdown-end.json", "org.openstack.nova.instance.shutdown.end"],
  ];
  for (const [legacy, versioned, type] of cases) {
    it(type, () => {
      const l = decoded(decodeNotification(Buffer.from(JSON.stringify(readFixture(legacy))), props()));
      const v = decoded(decodeNotification(envelope(readFixture(versioned)), props({ routingKey: "versioned_notifications.info" })));
      expect(l.event.type).toBe(type);
      expect(v.event.type).toBe(type);
      expect(l.event["openstackformat"]).toBe("legacy");
      expect(v.event["openstackformat"]).toBe("versioned");
    });
  }

  it("a legacy delete.end built from the StackTach payload matches the versioned delete.end type", () => {
    const payload = readFixture("legacy/stacktach/compute-instance-delete-end_1.json") as { instance_id: string; host: string };
    const message = { message_id: "m-1", event_type: "compute.instance.delete.end", priority: "INFO", publisher_id: `compute.${payload.host}`, timestamp: "2015-01-22 20:44:51", payload };
    const { event } = decoded(decodeNotification(envelope(message), props()));
    expect(event.type).toBe("org.openstack.nova.instance.delete.end");
    expect(event.subject).toBe(payload.instance_id);
    expect(event.source).toBe(`openstack/nova/${payload.host}`);
    expect(event.time).toBe("2015-01-22T20:44:51Z");
  });
});

describe("decodeNotification: services from publisher_id and exchange", () => {
  const cases: { publisher: string | undefined; exchange: string; eventType: string; payload: unknown; type: string; source: string; subject?: string }[] = [
    { publisher: "volume.cinder-1", exchange: "cinder", eventType: "volume.create.end", payload: { volume_id: "v1" }, type: "org.openstack.cinder.volume.create.end", source: "openstack/cinder/cinder-1", subject: "v1" },
    { publisher: "image.localhost", exchange: "glance", eventType: "image.upload", payload: { id: "img-1" }, type: "org.openstack.glance.image.upload", source: "openstack/glance/localhost", subject: "img-1" },
    { publisher: "nova-api:ctl-1", exchange: "nova", eventType: "instance.delete.end", payload: { "nova_object.data": { uuid: "u-1" } }, type: "org.openstack.nova.instance.delete.end", source: "openstack/nova/ctl-1", subject: "u-1" },
    { publisher: "orchestration.heat-1", exchange: "heat", eventType: "orchestration.stack.create.end", payload: { stack_identity: "s" }, type: "org.openstack.heat.orchestration.stack.create.end", source: "openstack/heat/heat-1" },
    { publisher: "mystery.h1", exchange: "heat", eventType: "stack.create.end", payload: { stack_id: "s-9" }, type: "org.openstack.heat.stack.create.end", source: "openstack/heat/h1", subject: "s-9" },
    { publisher: undefined, exchange: "neutron", eventType: "router.create.end", payload: { router: { id: "r-1" } }, type: "org.openstack.neutron.router.create.end", source: "openstack/neutron/unknown", subject: "r-1" },
  ];
  for (const c of cases) {
    it(`${c.publisher ?? "(no publisher)"} on ${c.exchange}: ${c.eventType}`, () => {
      const message = { event_type: c.eventType, priority: "INFO", payload: c.payload, ...(c.publisher === undefined ? {} : { publisher_id: c.publisher }) };
      const { event, partitionKey } = decoded(decodeNotification(envelope(message), props({ exchange: c.exchange })));
      expect(event.type).toBe(c.type);
      expect(event.source).toBe(c.source);
      expect(event.subject).toBe(c.subject);
      expect(partitionKey).toBe(c.subject ?? c.type);
    });
  }

  it("keeps an upper-case priority's meaning: ERROR on *.error", () => {
    const message = { message_id: "e1", event_type: "compute.instance.create.error", priority: "ERROR", publisher_id: "compute.h", payload: { instance_id: "i" } };
    const { event } = decoded(decodeNotification(envelope(message), props({ routingKey: "notifications.error" })));
    expect(event["openstackpriority"]).toBe("error");
    expect(event.type).toBe("org.openstack.nova.instance.create.error");
  });
});

describe("rfc3339", () => {
  it.each([
    ["2012-10-29 13:42:11.123456", "2012-10-29T13:42:11.123456Z"],
    ["2012-11-03 17:54:27", "2012-11-03T17:54:27Z"],
    ["2012-10-29T13:42:11Z", "2012-10-29T13:42:11Z"],
    ["2012-10-29T13:42:11.5+00:00", "2012-10-29T13:42:11.5Z"],
    ["2012-10-29T13:42:11+02:00", "2012-10-29T11:42:11.000Z"],
  ])("%s -> %s", (input, output) => {
    expect(rfc3339(input)).toBe(output);
  });
  it.each(["yesterday", "2012-13-45 99:00:00", ""])("rejects %j", (input) => {
    expect(rfc3339(input)).toBeUndefined();
  });
});

describe("decodeNotification: compressed bodies (kombu compression header)", () => {
  const message = { message_id: "c1", event_type: "port.create.end", priority: "INFO", publisher_id: "network.n1", payload: { port: { id: "p1" } } };
  it.each([
    ["application/x-gzip", deflateSync(envelope(message))], // kombu's zlib codec
    ["gzip", gzipSync(envelope(message))],
  ])("%s", (compression, body) => {
    const { event } = decoded(decodeNotification(body, props({ exchange: "neutron", headers: { compression } })));
    expect(event.type).toBe("org.openstack.neutron.port.create.end");
    expect(event.subject).toBe("p1");
  });
  it("rejects bz2, which node:zlib cannot read", () => {
    expect(reason(decodeNotification(Buffer.from("BZh9"), props({ headers: { compression: "application/x-bz2" } })))).toMatch(/^unsupported compression "application\/x-bz2"/);
  });
  it("rejects a body that decompresses beyond the limit", () => {
    const bomb = deflateSync(Buffer.alloc(5 * 1024 * 1024, 32));
    expect(reason(decodeNotification(bomb, props({ headers: { compression: "zlib" } })))).toMatch(/^payload too large: /);
  });
  it("rejects a corrupt compressed body", () => {
    expect(reason(decodeNotification(Buffer.from("not zlib"), props({ headers: { compression: "zlib" } })))).toMatch(/^body does not decompress as zlib: /);
  });
});

describe("decodeNotification: malformed input gives a reason", () => {
  it("body is not JSON", () => {
    expect(reason(decodeNotification(Buffer.from("{nope"), props()))).toMatch(/^body is not JSON: /);
  });
  it("envelope with broken inner JSON", () => {
    const body = Buffer.from(JSON.stringify({ "oslo.version": "2.0", "oslo.message": '{"event_type": "x", ' }));
    expect(reason(decodeNotification(body, props()))).toMatch(/^oslo\.message is not valid JSON: /);
  });
  it("envelope whose oslo.message is not a string", () => {
    const body = Buffer.from(JSON.stringify({ "oslo.version": "2.0", "oslo.message": { event_type: "x" } }));
    expect(reason(decodeNotification(body, props()))).toBe("oslo.message is not a JSON string");
  });
  it("an envelope version other than 2.x", () => {
    const body = Buffer.from(JSON.stringify({ "oslo.version": "3.0", "oslo.message": "{}" }));
    expect(reason(decodeNotification(body, props()))).toBe('unsupported oslo envelope version "3.0": expected 2.x');
  });
  it("missing event_type", () => {
    expect(reason(decodeNotification(envelope({ payload: {}, publisher_id: "compute.h" }), props()))).toBe("missing event_type");
  });
  it("missing payload", () => {
    expect(reason(decodeNotification(envelope({ event_type: "compute.instance.create.end" }), props()))).toBe("missing payload in compute.instance.create.end notification");
  });
  it("JSON that is not an object", () => {
    expect(reason(decodeNotification(Buffer.from("[1,2]"), props()))).toBe("body is not a JSON object");
  });
  it("a payload over the default 1 MiB limit", () => {
    const big = envelope({ event_type: "compute.instance.update", payload: { blob: "x".repeat(1024 * 1024) } });
    expect(reason(decodeNotification(big, props()))).toBe(`payload too large: ${big.length} bytes > limit of 1048576 bytes`);
  });
  it("a payload over a configured limit", () => {
    const body = envelope({ event_type: "compute.instance.update", payload: { blob: "x".repeat(200) } });
    expect(reason(decodeNotification(body, props(), { maxPayloadBytes: 100 }))).toBe(`payload too large: ${body.length} bytes > limit of 100 bytes`);
    expect(decodeNotification(body, props(), { maxPayloadBytes: 10_000 }).ok).toBe(true);
  });
  it("a pickled (non-JSON) content type", () => {
    expect(reason(decodeNotification(Buffer.from("x"), props({ contentType: "application/x-python-serialize" })))).toMatch(/^unsupported content type /);
  });
});
