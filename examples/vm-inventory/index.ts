// vm-inventory: keeps an inventory of the cloud's VMs from nova's create.end and delete.end
// notifications, legacy or versioned alike (instanceFromEvent gives one view of both). The
// inventory lives in the instance's memory, so it restarts empty; a real one would write to a CMDB.
import type { CloudEvent, Handler } from "kumo/runtime";
import { instanceFromEvent, type Instance } from "kumo/runtime";

const inventory = new Map<string, Instance>();

const handler: Handler<CloudEvent> = (event, ctx) => {
  const vm = instanceFromEvent(event);
  if (vm === undefined) {
    ctx.log.warn(`ignoring ${event.type} (${event.id}): it is not about a nova instance`);
    return { ignored: event.id };
  }
  switch (vm.eventType) {
    case "instance.create.end": {
      // Redelivery (at-least-once) or nova sending both formats only overwrites the same entry.
      inventory.set(vm.id, vm);
      const ips = vm.addresses.map((a) => a.address).join(", ") || "no addresses";
      ctx.log.info(
        `registered ${vm.name} (${vm.id}) in project ${vm.project} on host ${vm.host}: ` +
          `${vm.flavor.name} (${vm.flavor.vcpus} vCPU, ${vm.flavor.ramMb} MB RAM, ${vm.flavor.diskGb} GB disk), ${ips}`,
      );
      break;
    }
    case "instance.delete.end": {
      const known = inventory.delete(vm.id);
      ctx.log.info(`removed ${vm.name} (${vm.id}) from project ${vm.project} on host ${vm.host}${known ? "" : " (it was not in the inventory)"}`);
      break;
    }
    default:
      ctx.log.debug(`ignoring ${vm.eventType} for ${vm.id}`);
  }
  return { vms: inventory.size };
};

export default handler;
