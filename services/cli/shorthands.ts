// OpenStack event shorthands for `kumo trigger create --on <shorthand>`: the words operators
// say ("vm.create") mapped to the CloudEvent types the OpenStack provider emits.

import { table } from "./output.ts";

/** Shorthand to CloudEvent type, in the order `--on list` prints them. */
export const openstackShorthands: Readonly<Record<string, string>> = {
  "vm.create": "org.openstack.nova.instance.create.end",
  "vm.delete": "org.openstack.nova.instance.delete.end",
  "vm.error": "org.openstack.nova.instance.create.error",
  "vm.power-off": "org.openstack.nova.instance.power_off.end",
  "vm.power-on": "org.openstack.nova.instance.power_on.end",
  "vm.shutdown": "org.openstack.nova.instance.shutdown.end",
  // Nova sends instance.update as one notification, without .start/.end.
  "vm.update": "org.openstack.nova.instance.update",
  "port.create": "org.openstack.neutron.port.create.end",
  "port.delete": "org.openstack.neutron.port.delete.end",
  "network.create": "org.openstack.neutron.network.create.end",
  "network.delete": "org.openstack.neutron.network.delete.end",
  "volume.create": "org.openstack.cinder.volume.create.end",
  "volume.delete": "org.openstack.cinder.volume.delete.end",
  "volume.attach": "org.openstack.cinder.volume.attach.end",
  "volume.detach": "org.openstack.cinder.volume.detach.end",
};

/** The shorthands as a table: SHORTHAND, EVENT TYPE. */
export function shorthandTable(): string {
  return table(["SHORTHAND", "EVENT TYPE"], Object.entries(openstackShorthands));
}
