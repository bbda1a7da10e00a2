// Knative-style serving through a real `kumo server`: a burst of 200 concurrent requests at a
// function with no instances (concurrency 10) makes the activator start as many instances as the
// burst needs (not one per request), answers every request, and after the scale-to-zero grace
// (shortened here by config, not by sleeping for minutes) the revision is back at zero.

import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runKumo, startKumoServer, tempDir, type ServerProcess } from "../support/kumo.ts";

let server: ServerProcess;

/** Reads one sample of a metric for the function "burst". */
async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes('function="burst"'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

beforeAll(async () => {
  server = await startKumoServer({
    env: {
      KUMO_AUTOSCALER_STABLE_WINDOW_MS: "10000",
      KUMO_AUTOSCALER_TICK_INTERVAL_MS: "1000",
      KUMO_AUTOSCALER_SCALE_TO_ZERO_GRACE_MS: "2000",
      // A new revision starts with no instance (the default, 1, would warm one up right away).
      KUMO_AUTOSCALER_INITIAL_SCALE: "0",
    },
  });
  const dir = await tempDir("kumo-burst-");
  await writeFile(join(dir, "index.ts"), `export default async () => { await new Promise((r) => setTimeout(r, 100)); return { ok: true }; };\n`);
  const r = await runKumo(["deploy", dir, "--name", "burst", "--concurrency", "10", "--max-scale", "30"], { KUMO_SERVER: server.url });
  expect(r.code, r.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe("scale from zero on a burst, and back to zero", () => {
  it("starts at zero instances", async () => {
    expect(await metric("kumo_instances")).toBe(0);
  });

  it("answers all 200 concurrent requests, starting as many instances as the burst needs", async () => {
    const results = await Promise.all(Array.from({ length: 200 }, () => fetch(`${server.url}/default/burst`).then(async (r) => ({ status: r.status, body: await r.text() }))));
    const bad = results.filter((r) => r.status !== 200);
    expect(bad, JSON.stringify(bad.slice(0, 3))).toEqual([]);
    const cold = await metric("kumo_cold_starts_total");
    // 200 requests / 10 per instance = 20 instances at most; more than one, far fewer than 200.
    expect(cold).toBeGreaterThan(1);
    expect(cold).toBeLessThanOrEqual(20);
    expect(await metric("kumo_instances")).toBeGreaterThan(1);
  });

  it("scales back to zero after the grace period without traffic", async () => {
    let instances = -1;
    for (let i = 0; i < 60; i++) {
      instances = await metric("kumo_instances");
      if (instances === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(instances).toBe(0);
    expect(await metric("kumo_autoscaler_desired_instances")).toBe(0);
  }, 40_000);

  it("serves again from zero (a cold start through the activator)", async () => {
    const before = await metric("kumo_cold_starts_total");
    const res = await fetch(`${server.url}/default/burst`);
    expect(res.status).toBe(200);
    expect(await metric("kumo_cold_starts_total")).toBe(before + 1);
  });
});
