// Helpers for functions triggered by OpenStack notifications: one view of a nova instance
// whether the notification was legacy (flat payload) or versioned (nova_object.data). Pure
// functions with no imports, so they bundle into any function.

/** One IP address of an instance. */
export interface InstanceAddress {
  address: string;
  /** 4 or 6. */
  version: number;
  /** The network's label, e.g. "private". */
  network?: string;
  mac?: string;
}

/** A nova instance as a function sees it, the same for legacy and versioned notifications. */
export interface Instance {
  /** The instance uuid. */
  id: string;
  name: string;
  /** Owning project (tenant) id. */
  project: string;
  user: string;
  /** vm_state, e.g. "active", "building", "deleted". */
  state: string;
  flavor: { name: string; vcpus: number; ramMb: number; diskGb: number };
  addresses: InstanceAddress[];
  /** The compute host. */
  host: string;
  /** The image id. */
  image?: string;
  /** RFC 3339 UTC. */
  createdAt?: string;
  /** The event without service or format, e.g. "instance.create.end" (legacy "compute." dropped). */
  eventType: string;
}

/** The parts of a CloudEvent this module reads. */
export interface OpenStackEventLike {
  readonly type?: string;
  readonly data?: unknown;
  readonly [extension: string]: unknown;
}

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}

function str(v: unknown): string | undefined {
  if (typeof v === "string" && v !== "") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

function num(v: unknown): number {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return 0;
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? (v as unknown[]) : [];
}

/** The data of a versioned nova object ("nova_object.data"), or undefined. */
function novaData(v: unknown): Obj | undefined {
  return obj(obj(v)?.["nova_object.data"]);
}

/** oslo's naive UTC "2012-11-03 17:54:27.123" (or ISO) as RFC 3339 UTC. */
function utc(v: unknown): string | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)(Z|[+-]00:?00)?$/i.exec(s.trim());
  if (m !== null) return `${m[1]}T${m[2]}Z`;
  const ms = Date.parse(s);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

function address(v: unknown, network?: string, mac?: string): InstanceAddress | undefined {
  const o = obj(v);
  const addr = str(o?.["address"]);
  if (o === undefined || addr === undefined) return undefined;
  const net = str(o["label"]) ?? network;
  const hw = str(o["mac"]) ?? str(o["vif_mac"]) ?? mac;
  return {
    address: addr,
    version: num(o["version"]) || (addr.includes(":") ? 6 : 4),
    ...(net === undefined ? {} : { network: net }),
    ...(hw === undefined ? {} : { mac: hw }),
  };
}

/** The event name shared by both formats: "instance.create.end". */
function eventName(event: OpenStackEventLike): string {
  const original = str(event["openstackeventtype"]);
  if (original !== undefined) return original.startsWith("compute.") ? original.slice("compute.".length) : original;
  const type = str(event.type) ?? "";
  return type.startsWith("org.openstack.nova.") ? type.slice("org.openstack.nova.".length) : type;
}

function fromVersioned(d: Obj, eventType: string): Instance | undefined {
  const id = str(d["uuid"]);
  if (id === undefined) return undefined;
  const flavor = novaData(d["flavor"]) ?? {};
  const image = str(d["image_uuid"]);
  const createdAt = utc(d["created_at"]);
  return {
    id,
    name: str(d["display_name"]) ?? str(d["host_name"]) ?? "",
    project: str(d["tenant_id"]) ?? str(d["project_id"]) ?? "",
    user: str(d["user_id"]) ?? "",
    state: str(d["state"]) ?? "",
    flavor: { name: str(flavor["name"]) ?? "", vcpus: num(flavor["vcpus"]), ramMb: num(flavor["memory_mb"]), diskGb: num(flavor["root_gb"]) },
    addresses: list(d["ip_addresses"]).flatMap((ip) => {
      const a = address(novaData(ip));
      return a === undefined ? [] : [a];
    }),
    host: str(d["host"]) ?? "",
    ...(image === undefined ? {} : { image }),
    ...(createdAt === undefined ? {} : { createdAt }),
    eventType,
  };
}

function fromLegacy(p: Obj, eventType: string): Instance | undefined {
  const id = str(p["instance_id"]) ?? str(p["uuid"]);
  if (id === undefined) return undefined;
  const imageRef = str(p["image_ref_url"]);
  const image = str(obj(p["image_meta"])?.["base_image_ref"]) ?? (imageRef === undefined ? undefined : imageRef.split("/").pop()) ?? str(p["image_ref"]);
  const createdAt = utc(p["created_at"]);
  return {
    id,
    name: str(p["display_name"]) ?? str(p["hostname"]) ?? "",
    project: str(p["tenant_id"]) ?? str(p["project_id"]) ?? "",
    user: str(p["user_id"]) ?? "",
    state: str(p["state"]) ?? "",
    flavor: {
      name: str(p["instance_type"]) ?? str(obj(p["instance_type"])?.["name"]) ?? "",
      vcpus: num(p["vcpus"]),
      ramMb: num(p["memory_mb"]),
      diskGb: num(p["root_gb"] ?? p["disk_gb"]),
    },
    addresses: list(p["fixed_ips"]).flatMap((ip) => {
      const fixed = address(ip);
      if (fixed === undefined) return [];
      // Floating IPs hang off the fixed IP they are associated with.
      const floating = list(obj(ip)?.["floating_ips"]).flatMap((f) => {
        const a = address(f, undefined, fixed.mac);
        return a === undefined ? [] : [a];
      });
      return [fixed, ...floating];
    }),
    host: str(p["host"]) ?? "",
    ...(image === undefined ? {} : { image }),
    ...(createdAt === undefined ? {} : { createdAt }),
    eventType,
  };
}

/**
 * The nova instance a notification is about, from a legacy (`compute.instance.*`, flat payload)
 * or versioned (`instance.*`, `nova_object.data`) event; undefined when the event carries no instance.
 */
export function instanceFromEvent(event: OpenStackEventLike): Instance | undefined {
  const payload = obj(event.data);
  const type = str(event.type) ?? "";
  if (payload === undefined || (type.startsWith("org.openstack.") && !type.startsWith("org.openstack.nova."))) return undefined;
  const eventType = eventName(event);
  const versioned = novaData(payload);
  return versioned === undefined ? fromLegacy(payload, eventType) : fromVersioned(versioned, eventType);
}
