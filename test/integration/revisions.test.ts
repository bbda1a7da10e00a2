// Revisions and traffic through a real `kumo server` and the CLI: a new revision takes traffic
// only when Ready while in-flight requests on the old one finish (graceful drain); traffic
// splits by percent, tags get their own URL, and rollback returns to the previous revision.

import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runKumo, startKumoServer, tempDir, type ServerProcess } from "../support/kumo.ts";

let server: ServerProcess;
let env: Record<string, string>;
let dir: string;

async function deployVersion(version: string): Promise<void> {
  await writeFile(join(dir, "index.ts"), `export default async (req: { query: Record<string, string> }) => {\n  if (req.query.slow) await new Promise((r) => setTimeout(r, 1500));\n  return { version: "${version}" };\n};\n`);
  const r = await runKumo(["deploy", dir, "--name", "rev"], env);
  expect(r.code, r.stderr).toBe(0);
}

const version = async (path = "rev"): Promise<string> => ((await (await fetch(`${server.url}/default/${path}`)).json()) as { version: string }).version;

beforeAll(async () => {
  server = await startKumoServer();
  env = { KUMO_SERVER: server.url };
  dir = await tempDir("kumo-rev-");
  await deployVersion("v1");
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe("revisions and traffic", () => {
  it("lets in-flight requests on the old revision finish while the new one takes traffic", async () => {
    const slow = fetch(`${server.url}/default/rev?slow=1`).then(async (r) => ({ status: r.status, body: (await r.json()) as { version: string }, revision: r.headers.get("x-kumo-revision") }));
    await new Promise((r) => setTimeout(r, 200));
    await deployVersion("v2");
    expect(await version()).toBe("v2");
    const old = await slow;
    expect(old).toEqual({ status: 200, body: { version: "v1" }, revision: "rev-00001" });
  });

  it("splits traffic by percent and routes a tag to its revision", async () => {
    const r = await runKumo(["traffic", "rev", "rev-00001=50", "rev-00002=50", "--tag", "rev-00001=old"], env);
    expect(r.code, r.stderr).toBe(0);
    const seen = new Set<string>();
    for (let i = 0; i < 60 && seen.size < 2; i++) seen.add(await version());
    expect([...seen].sort()).toEqual(["v1", "v2"]);
    expect(await version("rev@old")).toBe("v1");
    const d = await runKumo(["describe", "rev"], env);
    expect(d.stdout).toContain("old");
    expect(d.stdout).toMatch(/rev-00001\s+50/);
  });

  it("rolls back to the previous revision", async () => {
    await runKumo(["traffic", "rev", "--latest"], env);
    expect(await version()).toBe("v2");
    const r = await runKumo(["rollback", "rev"], env);
    expect(r.code, r.stderr).toBe(0);
    for (let i = 0; i < 10; i++) expect(await version()).toBe("v1");
  });
});
