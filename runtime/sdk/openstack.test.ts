import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { instanceFromEvent, type Instance } from "./index.ts";

const FIXTURES = fileURLToPath(new URL("../../../shared/fixtures/openstack/", import.meta.url));
const fixture = (path: string): Record<string, unknown> => JSON.parse(readFileSync(`${FIXTURES}${path}`, "utf8")) as Record<string, unknown>;

/** An event as the openstack provider delivers it. */
function event(eventType: string, payload: unknown): { specversion: "1.0"; id: string; source: string; type: string; data: unknown; openstackeventtype: string } {
  const name = eventType.startsWith("compute.") ? eventType.slice("compute.".length) : eventType;
  return { specversion: "1.0", id: "e1", source: "openstack/nova/h", type: `org.openstack.nova.${name}`, data: payload, openstackeventtype: eventType };
}

describe("instanceFromEvent", () => {
  it("reads a legacy compute.instance.create.end (designate sample)", () => {
    const sample = fixture("legacy/designate/nova/compute.instance.create.end.json");
    expect(instanceFromEvent(event(sample["event_type"] as string, sample["payload"]))).toEqual({
      id: "3e301a55-fbbe-478d-92d0-eefabf135c38",
      name: "TestInstance",
      project: "33a88272e06a49c1a0f653abc374b56b",
      user: "953f8394fa044302b7d42f47228e427d",
      state: "active",
      flavor: { name: "m1.tiny", vcpus: 1, ramMb: 512, diskGb: 0 },
      addresses: [{ address: "172.16.0.14", version: 4, network: "private" }],
      host: "stack01",
      image: "e52f1321-fb9e-40fb-8057-555a850462e8",
      createdAt: "2012-11-03T17:54:27Z",
      eventType: "instance.create.end",
    } satisfies Instance);
  });

  it("reads a versioned instance.create.end (nova sample)", () => {
    const sample = fixture("resolved/instance-create-end.json");
    expect(instanceFromEvent(event(sample["event_type"] as string, sample["payload"]))).toEqual({
      id: "178b0921-8f85-4257-88b6-2e743b5a975c",
      name: "some-server",
      project: "6f70656e737461636b20342065766572",
      user: "fake",
      state: "active",
      flavor: { name: "test_flavor", vcpus: 1, ramMb: 512, diskGb: 1 },
      addresses: [{ address: "192.168.1.3", version: 4, network: "private", mac: "fa:16:3e:4c:2c:30" }],
      host: "compute",
      image: "155d900f-4e14-4e4c-a73d-069cbf4541e6",
      createdAt: "2012-10-29T13:42:11Z",
      eventType: "instance.create.end",
    } satisfies Instance);
  });

  it("reads a versioned instance.delete.end", () => {
    const sample = fixture("resolved/instance-delete-end.json");
    const vm = instanceFromEvent(event(sample["event_type"] as string, sample["payload"]))!;
    expect(vm.id).toBe("178b0921-8f85-4257-88b6-2e743b5a975c");
    expect(vm.state).toBe("deleted");
    expect(vm.eventType).toBe("instance.delete.end");
  });

  it("reads StackTach's production payloads, IPv6 and several networks included", () => {
    const created = instanceFromEvent(event("compute.instance.create.end", fixture("legacy/stacktach/compute-instance-create-end_1.json")))!;
    expect(created).toMatchObject({
      id: "52aee9d3-e933-44b5-bfd0-7eb2653a1f49",
      name: "Instance_195577",
      project: "604905",
      user: "447054",
      flavor: { name: "512MB Standard Instance", vcpus: 1, ramMb: 512, diskGb: 20 },
      host: "host-224739",
      image: "9af8a664-b2e8-444e-ae79-10d668762922",
      createdAt: "2015-01-22T20:44:51.223356Z",
    });
    expect(created.addresses).toEqual([
      { address: "217.184.189.172", version: 4, network: "public" },
      { address: "e95a:9268:966d:1f06:6abe:02e1:e9c3:d134", version: 6, network: "public" },
      { address: "162.197.211.135", version: 4, network: "private" },
    ]);
    const deleted = instanceFromEvent(event("compute.instance.delete.end", fixture("legacy/stacktach/compute-instance-delete-end_1.json")))!;
    expect(deleted.eventType).toBe("instance.delete.end");
    expect(deleted.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("gives the same view of one VM from its legacy and its versioned notification", () => {
    const versioned = fixture("resolved/instance-create-end.json");
    const legacyPayload = {
      instance_id: "178b0921-8f85-4257-88b6-2e743b5a975c",
      display_name: "some-server",
      tenant_id: "6f70656e737461636b20342065766572",
      user_id: "fake",
      state: "active",
      instance_type: "test_flavor",
      vcpus: 1,
      memory_mb: 512,
      root_gb: 1,
      disk_gb: 1,
      fixed_ips: [{ address: "192.168.1.3", version: 4, label: "private", vif_mac: "fa:16:3e:4c:2c:30", floating_ips: [], meta: {}, type: "fixed" }],
      host: "compute",
      image_ref_url: "http://glance:9292/images/155d900f-4e14-4e4c-a73d-069cbf4541e6",
      created_at: "2012-10-29 13:42:11",
    };
    const fromLegacy = instanceFromEvent(event("compute.instance.create.end", legacyPayload));
    const fromVersioned = instanceFromEvent(event(versioned["event_type"] as string, versioned["payload"]));
    expect(fromLegacy).toEqual(fromVersioned);
  });

  it("lists floating IPs after the fixed IP they are attached to", () => {
    const vm = instanceFromEvent(
      event("compute.instance.update", {
        instance_id: "i-1",
        fixed_ips: [{ address: "10.0.0.5", version: 4, label: "net", vif_mac: "fa:16:3e:00:00:01", floating_ips: [{ address: "203.0.113.9", version: 4 }] }],
      }),
    )!;
    expect(vm.addresses).toEqual([
      { address: "10.0.0.5", version: 4, network: "net", mac: "fa:16:3e:00:00:01" },
      { address: "203.0.113.9", version: 4, mac: "fa:16:3e:00:00:01" },
    ]);
  });

  it("is undefined for events that are not about an instance", () => {
    expect(instanceFromEvent({ type: "org.openstack.neutron.port.create.end", data: { port: { id: "p" } } })).toBeUndefined();
    expect(instanceFromEvent({ type: "dev.kumo.cron.fired" })).toBeUndefined();
    expect(instanceFromEvent({ type: "x", data: "text" })).toBeUndefined();
    // A cinder payload naming an instance is still not a nova instance notification.
    expect(instanceFromEvent({ type: "org.openstack.cinder.volume.attach.end", data: { volume_id: "v", instance_id: "i" } })).toBeUndefined();
  });

  it("works from the type alone when the openstackeventtype extension is missing", () => {
    expect(instanceFromEvent({ type: "org.openstack.nova.instance.delete.end", data: { instance_id: "i-2" } })?.eventType).toBe("instance.delete.end");
  });
});
