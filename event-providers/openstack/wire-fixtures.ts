// Test-only: loads the shared OpenStack notification fixtures (shared/fixtures/openstack, a
// sibling of the repository clone) and states what each wire fixture must decode to. Used by
// decode.test.ts and provider.test.ts; not part of the module's public surface.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** shared/fixtures/openstack, found beside the repository root (`<clone>/../shared`). */
export const FIXTURES_DIR = fileURLToPath(new URL("../../../shared/fixtures/openstack/", import.meta.url));

/** One AMQP-level fixture: where oslo.messaging would publish it, with which properties and body. */
export interface WireFixture {
  file: string;
  exchange: string;
  routingKey: string;
  properties: { content_type: string; content_encoding: string; delivery_mode: number; priority: number };
  /** The envelope body as kombu would send it (JSON text). */
  body: Buffer;
  /** The decoded oslo.message. */
  inner: Record<string, unknown>;
}

/** Reads a fixture file as JSON. */
export function readFixture(relative: string): unknown {
  return JSON.parse(readFileSync(join(FIXTURES_DIR, relative), "utf8"));
}

/** Lists the .json files of a fixture folder, sorted. */
export function fixtureFiles(folder: string): string[] {
  return readdirSync(join(FIXTURES_DIR, folder))
    .filter((f) => f.endsWith(".json"))
    .sort();
}

/** Every wire/ fixture. */
export function wireFixtures(): WireFixture[] {
  return fixtureFiles("wire").map((file) => {
    const raw = readFixture(`wire/${file}`) as {
      exchange: string;
      routing_key: string;
      properties: WireFixture["properties"];
      body: { "oslo.version": string; "oslo.message": string };
    };
    return {
      file,
      exchange: raw.exchange,
      routingKey: raw.routing_key,
      properties: raw.properties,
      body: Buffer.from(JSON.stringify(raw.body)),
      inner: JSON.parse(raw.body["oslo.message"]) as Record<string, unknown>,
    };
  });
}

const NOVA_LEGACY_VM = "3e301a55-fbbe-478d-92d0-eefabf135c38";
const NOVA_VERSIONED_VM = "178b0921-8f85-4257-88b6-2e743b5a975c";
const VERSIONED_PROJECT = "6f70656e737461636b20342065766572";
const DESIGNATE_NEUTRON_PROJECT = "c97027dd880d4c129ae7a4ba7edade05";
const SEARCHLIGHT_PROJECT = "5fe7c4e4e492490393c674089a178e19";
const SEARCHLIGHT_VOLUME_PROJECT = "1816a16093df465dbc609cf638422a05";
const SEARCHLIGHT_PORT = "f7c93feb-b837-4bb1-b0bc-7ad2a53d85cb";
const SEARCHLIGHT_NETWORK = "7a95c19d-9abc-4651-b491-f2345994e956";
const SEARCHLIGHT_SUBNET = "db771741-9249-4f7b-97a7-d6187c4e244b";
const SEARCHLIGHT_VOLUME = "f54b1d2f-4514-4688-8da7-4bc66767b6be";

/** What a wire fixture must decode to: [type, source, subject or null, openstackproject]. */
export const EXPECTED: Readonly<Record<string, readonly [string, string, string | null, string]>> = {
  "legacy_designate_compute.instance.create.end.json": ["org.openstack.nova.instance.create.end", "openstack/nova/stack01", NOVA_LEGACY_VM, "33a88272e06a49c1a0f653abc374b56b"],
  "legacy_designate_compute.instance.create.start.json": ["org.openstack.nova.instance.create.start", "openstack/nova/stack01", NOVA_LEGACY_VM, "33a88272e06a49c1a0f653abc374b56b"],
  "legacy_designate_compute.instance.delete.start.json": ["org.openstack.nova.instance.delete.start", "openstack/nova/stack01", NOVA_LEGACY_VM, "33a88272e06a49c1a0f653abc374b56b"],
  "legacy_designate_compute.instance.shutdown.end.json": ["org.openstack.nova.instance.shutdown.end", "openstack/nova/stack01", NOVA_LEGACY_VM, "33a88272e06a49c1a0f653abc374b56b"],
  "legacy_designate_compute.instance.shutdown.start.json": ["org.openstack.nova.instance.shutdown.start", "openstack/nova/stack01", NOVA_LEGACY_VM, "33a88272e06a49c1a0f653abc374b56b"],
  "legacy_designate_floatingip.update.end_associate.json": ["org.openstack.neutron.floatingip.update.end", "openstack/neutron/svc02.os.lan", "f38ff2b6-cd4d-433e-8a9c-9e00dfc05b1e", DESIGNATE_NEUTRON_PROJECT],
  "legacy_designate_port.create.end.json": ["org.openstack.neutron.port.create.end", "openstack/neutron/svc02.os.lan", "289ed46b-274c-444d-9fd4-bddf8acc7d7c", DESIGNATE_NEUTRON_PROJECT],
  "legacy_designate_port.create.start.json": ["org.openstack.neutron.port.create.start", "openstack/neutron/svc02.os.lan", null, DESIGNATE_NEUTRON_PROJECT],
  "legacy_designate_port.delete.end.json": ["org.openstack.neutron.port.delete.end", "openstack/neutron/svc02.os.lan", "bfdcb007-f68d-46bd-8150-abcae9fb3af6", DESIGNATE_NEUTRON_PROJECT],
  "legacy_designate_port.delete.start.json": ["org.openstack.neutron.port.delete.start", "openstack/neutron/svc02.os.lan", "bfdcb007-f68d-46bd-8150-abcae9fb3af6", DESIGNATE_NEUTRON_PROJECT],
  "legacy_searchlight_dhcp-subnet.create.end.json": ["org.openstack.neutron.subnet.create.end", "openstack/neutron/devstack", "7578fb5f-8c89-48ae-ac9c-65d7a7959bd3", SEARCHLIGHT_PROJECT],
  // The port's owner, not the admin context (nova creating the port for a user).
  "legacy_searchlight_instance-create.port.create.end.json": ["org.openstack.neutron.port.create.end", "openstack/neutron/devstack", "100bdb32-9356-4d84-ac94-f8daee223214", SEARCHLIGHT_PROJECT],
  // searchlight's sample says publisher network.devstack; the compute.instance. prefix still marks nova.
  "legacy_searchlight_instance-update-error-during-schedule.json": ["org.openstack.nova.instance.update", "openstack/nova/devstack", "4b86f534-16db-4de8-8ce0-f1ee68894835", "b1fbc598025841899f63333269abe1d2"],
  "legacy_searchlight_instance-update-error-final.json": ["org.openstack.nova.instance.update", "openstack/nova/devstack", "4b86f534-16db-4de8-8ce0-f1ee68894835", "b1fbc598025841899f63333269abe1d2"],
  "legacy_searchlight_network.create.end.json": ["org.openstack.neutron.network.create.end", "openstack/neutron/devstack", SEARCHLIGHT_NETWORK, SEARCHLIGHT_PROJECT],
  "legacy_searchlight_network.delete.end.json": ["org.openstack.neutron.network.delete.end", "openstack/neutron/devstack", SEARCHLIGHT_NETWORK, SEARCHLIGHT_PROJECT],
  "legacy_searchlight_network.update.end.json": ["org.openstack.neutron.network.update.end", "openstack/neutron/devstack", SEARCHLIGHT_NETWORK, SEARCHLIGHT_PROJECT],
  "legacy_searchlight_port.create.end.json": ["org.openstack.neutron.port.create.end", "openstack/neutron/devstack", SEARCHLIGHT_PORT, SEARCHLIGHT_PROJECT],
  "legacy_searchlight_port.delete.end.json": ["org.openstack.neutron.port.delete.end", "openstack/neutron/devstack", SEARCHLIGHT_PORT, SEARCHLIGHT_PROJECT],
  "legacy_searchlight_port_attach.json": ["org.openstack.neutron.port.update.end", "openstack/neutron/devstack", SEARCHLIGHT_PORT, SEARCHLIGHT_PROJECT],
  "legacy_searchlight_port_detach.json": ["org.openstack.neutron.port.update.end", "openstack/neutron/devstack", SEARCHLIGHT_PORT, SEARCHLIGHT_PROJECT],
  "legacy_searchlight_port_rename.json": ["org.openstack.neutron.port.update.end", "openstack/neutron/devstack", SEARCHLIGHT_PORT, SEARCHLIGHT_PROJECT],
  "legacy_searchlight_rbac_policy.create.end.json": ["org.openstack.neutron.rbac_policy.create.end", "openstack/neutron/devstack", "d7491be9-ee3d-40d7-9880-0ce82c7c12f6", "c4b424b17cc04cefa7211b40c5c893c2"],
  "legacy_searchlight_rbac_policy.delete.end.json": ["org.openstack.neutron.rbac_policy.delete.end", "openstack/neutron/devstack", "d7491be9-ee3d-40d7-9880-0ce82c7c12f6", SEARCHLIGHT_PROJECT],
  "legacy_searchlight_subnet.create.end.json": ["org.openstack.neutron.subnet.create.end", "openstack/neutron/devstack", SEARCHLIGHT_SUBNET, SEARCHLIGHT_PROJECT],
  "legacy_searchlight_subnet.delete.end.json": ["org.openstack.neutron.subnet.delete.end", "openstack/neutron/devstack", SEARCHLIGHT_SUBNET, SEARCHLIGHT_PROJECT],
  "legacy_searchlight_subnet.update.end.json": ["org.openstack.neutron.subnet.update.end", "openstack/neutron/devstack", SEARCHLIGHT_SUBNET, SEARCHLIGHT_PROJECT],
  "legacy_searchlight_volume.attach.end.json": ["org.openstack.cinder.volume.attach.end", "openstack/cinder/devstack@lvmdriver-1", SEARCHLIGHT_VOLUME, SEARCHLIGHT_VOLUME_PROJECT],
  "legacy_searchlight_volume.create.end.json": ["org.openstack.cinder.volume.create.end", "openstack/cinder/devstack@lvmdriver-1%23lvmdriver-1", SEARCHLIGHT_VOLUME, SEARCHLIGHT_VOLUME_PROJECT],
  "legacy_searchlight_volume.delete.end.json": ["org.openstack.cinder.volume.delete.end", "openstack/cinder/devstack@lvmdriver-1", "342b0875-2c7a-48b7-a391-f4d6ea8987c0", SEARCHLIGHT_VOLUME_PROJECT],
  "legacy_searchlight_volume.detach.end.json": ["org.openstack.cinder.volume.detach.end", "openstack/cinder/devstack@lvmdriver-1", SEARCHLIGHT_VOLUME, SEARCHLIGHT_VOLUME_PROJECT],
  "legacy_searchlight_volume.retype.json": ["org.openstack.cinder.volume.retype", "openstack/cinder/devstack@lvmdriver-1", SEARCHLIGHT_VOLUME, SEARCHLIGHT_VOLUME_PROJECT],
  "legacy_searchlight_volume.update.end.json": ["org.openstack.cinder.volume.update.end", "openstack/cinder/devstack@lvmdriver-1%23lvmdriver-1", SEARCHLIGHT_VOLUME, SEARCHLIGHT_VOLUME_PROJECT],
  "versioned_instance-create-end.json": ["org.openstack.nova.instance.create.end", "openstack/nova/compute", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
  "versioned_instance-create-error.json": ["org.openstack.nova.instance.create.error", "openstack/nova/compute", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
  "versioned_instance-create-start.json": ["org.openstack.nova.instance.create.start", "openstack/nova/compute", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
  "versioned_instance-delete-end.json": ["org.openstack.nova.instance.delete.end", "openstack/nova/compute", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
  "versioned_instance-delete-start.json": ["org.openstack.nova.instance.delete.start", "openstack/nova/compute", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
  "versioned_instance-power_off-end.json": ["org.openstack.nova.instance.power_off.end", "openstack/nova/compute", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
  "versioned_instance-power_off-start.json": ["org.openstack.nova.instance.power_off.start", "openstack/nova/compute", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
  "versioned_instance-power_on-end.json": ["org.openstack.nova.instance.power_on.end", "openstack/nova/compute", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
  "versioned_instance-power_on-start.json": ["org.openstack.nova.instance.power_on.start", "openstack/nova/compute", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
  "versioned_instance-shutdown-end.json": ["org.openstack.nova.instance.shutdown.end", "openstack/nova/compute", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
  "versioned_instance-shutdown-start.json": ["org.openstack.nova.instance.shutdown.start", "openstack/nova/compute", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
  "versioned_instance-update.json": ["org.openstack.nova.instance.update", "openstack/nova/fake-mini", NOVA_VERSIONED_VM, VERSIONED_PROJECT],
};

/** oslo's naive UTC timestamp written as RFC 3339, for checking `time`. */
export function expectedTime(timestamp: string): string {
  return `${timestamp.replace(" ", "T")}Z`;
}
