import { describe, expect, it } from "vitest";
import { KumoError } from "../../services/model/index.ts";
import { loadOpenStackConfig, redactedUrl } from "./config.ts";

function configError(env: Record<string, string>): KumoError {
  try {
    loadOpenStackConfig(env, "host-1");
  } catch (err) {
    if (err instanceof KumoError) return err;
    throw err;
  }
  throw new Error("expected KUMO_E_INVALID_CONFIG");
}

describe("loadOpenStackConfig", () => {
  it("is off (undefined) when KUMO_OPENSTACK_AMQP_URL is unset or empty", () => {
    expect(loadOpenStackConfig({}, "h")).toBeUndefined();
    expect(loadOpenStackConfig({ KUMO_OPENSTACK_AMQP_URL: " " }, "h")).toBeUndefined();
  });

  it("fills the documented defaults and freezes the result", () => {
    const c = loadOpenStackConfig({ KUMO_OPENSTACK_AMQP_URL: "amqp://u:p@rabbit:5672/openstack" }, "node-7")!;
    expect(c).toEqual({
      url: "amqp://u:p@rabbit:5672/openstack",
      tls: { verify: true },
      exchanges: ["nova", "neutron", "cinder", "glance", "openstack"],
      topics: ["notifications", "versioned_notifications"],
      queue: "kumo-openstack-node-7",
      prefetch: 100,
      maxPayloadBytes: 1048576,
      reconnectMinMs: 500,
      reconnectMaxMs: 30000,
      retryDelayMs: 1000,
      lagIntervalMs: 15000,
      heartbeatSeconds: 30,
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.exchanges)).toBe(true);
    expect(Object.isFrozen(c.tls)).toBe(true);
  });

  it("reads every key", () => {
    const c = loadOpenStackConfig(
      {
        KUMO_OPENSTACK_AMQP_URL: "amqps://u:p@rabbit:5671/",
        KUMO_OPENSTACK_AMQP_CA_FILE: "/etc/ca.pem",
        KUMO_OPENSTACK_AMQP_CERT_FILE: "/etc/c.pem",
        KUMO_OPENSTACK_AMQP_KEY_FILE: "/etc/k.pem",
        KUMO_OPENSTACK_AMQP_TLS_VERIFY: "false",
        KUMO_OPENSTACK_EXCHANGES: " nova , cinder,nova ",
        KUMO_OPENSTACK_TOPICS: "notifications",
        KUMO_OPENSTACK_QUEUE: "kumo-events",
        KUMO_OPENSTACK_PREFETCH: "10",
        KUMO_OPENSTACK_MAX_PAYLOAD_BYTES: "2048",
        KUMO_OPENSTACK_RECONNECT_MIN_MS: "100",
        KUMO_OPENSTACK_RECONNECT_MAX_MS: "200",
        KUMO_OPENSTACK_RETRY_DELAY_MS: "0",
        KUMO_OPENSTACK_LAG_INTERVAL_MS: "1000",
        KUMO_OPENSTACK_HEARTBEAT_SECONDS: "0",
      },
      "h",
    )!;
    expect(c).toMatchObject({
      tls: { caFile: "/etc/ca.pem", certFile: "/etc/c.pem", keyFile: "/etc/k.pem", verify: false },
      exchanges: ["nova", "cinder"],
      topics: ["notifications"],
      queue: "kumo-events",
      prefetch: 10,
      maxPayloadBytes: 2048,
      reconnectMinMs: 100,
      reconnectMaxMs: 200,
      retryDelayMs: 0,
      lagIntervalMs: 1000,
      heartbeatSeconds: 0,
    });
  });

  it("reports every bad key at once", () => {
    const err = configError({
      KUMO_OPENSTACK_AMQP_URL: "http://rabbit/",
      KUMO_OPENSTACK_AMQP_CA_FILE: "/ca.pem",
      KUMO_OPENSTACK_EXCHANGES: "nova,bad name",
      KUMO_OPENSTACK_TOPICS: ",",
      KUMO_OPENSTACK_PREFETCH: "0",
      KUMO_OPENSTACK_MAX_PAYLOAD_BYTES: "1MB",
      KUMO_OPENSTACK_RECONNECT_MIN_MS: "5000",
      KUMO_OPENSTACK_RECONNECT_MAX_MS: "100",
      KUMO_OPENSTACK_PREFECTH: "5",
    });
    expect(err.code).toBe("KUMO_E_INVALID_CONFIG");
    expect(err.details.map((d) => d.field).sort()).toEqual(
      [
        "KUMO_OPENSTACK_PREFECTH",
        "KUMO_OPENSTACK_AMQP_URL",
        "KUMO_OPENSTACK_AMQP_URL",
        "KUMO_OPENSTACK_EXCHANGES",
        "KUMO_OPENSTACK_TOPICS",
        "KUMO_OPENSTACK_PREFETCH",
        "KUMO_OPENSTACK_MAX_PAYLOAD_BYTES",
        "KUMO_OPENSTACK_RECONNECT_MAX_MS",
      ].sort(),
    );
    expect(err.message).toMatch(/^invalid OpenStack provider config: .* \(and 7 more\)$/);
    expect(err.details.find((d) => d.field === "KUMO_OPENSTACK_PREFECTH")?.message).toMatch(/^unknown setting KUMO_OPENSTACK_PREFECTH/);
  });

  it("refuses oslo's shared queues, which other consumers drain", () => {
    const err = configError({ KUMO_OPENSTACK_AMQP_URL: "amqp://rabbit/", KUMO_OPENSTACK_QUEUE: "notifications.info" });
    expect(err.details).toEqual([{ field: "KUMO_OPENSTACK_QUEUE", message: expect.stringContaining("oslo's shared queue") as unknown }]);
  });

  it("needs a client key with a client certificate, and a URL that parses", () => {
    expect(configError({ KUMO_OPENSTACK_AMQP_URL: "amqps://rabbit/", KUMO_OPENSTACK_AMQP_CERT_FILE: "/c.pem" }).details[0]!.field).toBe("KUMO_OPENSTACK_AMQP_KEY_FILE");
    expect(configError({ KUMO_OPENSTACK_AMQP_URL: "not a url" }).details[0]!.message).toMatch(/is not a URL/);
  });

  it("hides the password in redactedUrl", () => {
    expect(redactedUrl("amqp://guest:secret@rabbit:5672/vh")).toBe("amqp://guest:***@rabbit:5672/vh");
  });
});
