import { readFile, readdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { KumoError } from "../model/index.ts";
import { loadServerConfig } from "./config.ts";

const root = new URL("../../", import.meta.url).pathname;

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sourceFiles(p)));
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") && !e.name.includes("fixture")) out.push(p);
  }
  return out;
}

function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    const eq = t.indexOf("=");
    env[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return env;
}

describe("loadServerConfig", () => {
  it("defaults to loopback on 8080 with ./.kumo", () => {
    const c = loadServerConfig({});
    expect(c).toMatchObject({ host: "127.0.0.1", port: 8080, dataDir: "./.kumo", apiToken: undefined, isolateDispatch: "auto", kafka: undefined, openstack: undefined });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("refuses a non-loopback address without an api token, naming the fix", () => {
    expect(() => loadServerConfig({ KUMO_HOST: "0.0.0.0" })).toThrow(/refusing to listen on 0\.0\.0\.0 without an api token: set KUMO_API_TOKEN/);
    expect(loadServerConfig({ KUMO_HOST: "0.0.0.0", KUMO_API_TOKEN: "x".repeat(32) }).host).toBe("0.0.0.0");
  });

  it("reports every bad key at once, across the server, autoscaler and OpenStack schemas", () => {
    let err: unknown;
    try {
      loadServerConfig({ KUMO_PORT: "http", KUMO_QUEUE_LIMIT: "-1", KUMO_AUTOSCALER_MAX_SCALE: "0", KUMO_OPENSTACK_AMQP_URL: "amqp://h", KUMO_OPENSTACK_PREFETCH: "lots", KUMO_ISOLATE_DISPATCH: "fast" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KumoError);
    const fields = (err as KumoError).details.map((d) => d.field);
    expect(fields).toEqual(expect.arrayContaining(["KUMO_PORT", "KUMO_QUEUE_LIMIT", "KUMO_AUTOSCALER_MAX_SCALE", "KUMO_OPENSTACK_PREFETCH", "KUMO_ISOLATE_DISPATCH"]));
    expect((err as KumoError).code).toBe("KUMO_E_INVALID_CONFIG");
  });

  it("parses the example in manifests/kumo-server.env with the same schema", async () => {
    const env = parseEnvFile(await readFile(join(root, "manifests/kumo-server.env"), "utf8"));
    const c = loadServerConfig(env);
    expect(c.host).toBe("0.0.0.0");
    expect(c.openstack?.exchanges).toEqual(["nova", "neutron", "cinder", "glance", "openstack"]);
    expect(c.autoscaler.maxScale).toBe(20);
  });

  it("every KUMO_* variable the code reads is documented in docs/configuration.md", async () => {
    const doc = await readFile(join(root, "docs/configuration.md"), "utf8");
    const missing = new Set<string>();
    for (const dir of ["services", "runtime", "event-providers"]) {
      for (const file of await sourceFiles(join(root, dir))) {
        const text = await readFile(file, "utf8");
        for (const m of text.matchAll(/\b(KUMO_[A-Z0-9_]*[A-Z0-9])\b/g)) {
          const key = m[1]!;
          if (key.startsWith("KUMO_E_") || key.startsWith("KUMO_POD_") || key.startsWith("KUMO_TEST_")) continue;
          if (!doc.includes(`\`${key}\``)) missing.add(`${key} (${relative(root, file)})`);
        }
      }
    }
    expect([...missing]).toEqual([]);
  });
});
