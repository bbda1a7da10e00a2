import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { errorCatalogue, KumoError, toKumoError } from "./errors.ts";

const docsPath = new URL("../../docs/errors.md", import.meta.url);

describe("the error catalogue", () => {
  it("documents every code in docs/errors.md, and documents no code that does not exist", async () => {
    const doc = await readFile(docsPath, "utf8");
    const documented = new Set([...doc.matchAll(/`(KUMO_E_[A-Z_]+)`/g)].map((m) => m[1]!));
    const codes = Object.keys(errorCatalogue);
    expect(codes.filter((c) => !documented.has(c)), "codes missing from docs/errors.md").toEqual([]);
    expect([...documented].filter((c) => !codes.includes(c)), "docs/errors.md names codes the catalogue does not have").toEqual([]);
  });

  it("documents each code's HTTP status as in the catalogue", async () => {
    const doc = await readFile(docsPath, "utf8");
    for (const [code, spec] of Object.entries(errorCatalogue)) {
      const row = doc.split("\n").find((l) => l.includes(`\`${code}\``) && l.startsWith("|"));
      expect(row, `a table row for ${code}`).toBeDefined();
      expect(row).toContain(`| ${spec.status} |`);
    }
  });

  it("gives each error its status, fault and body", () => {
    const e = new KumoError("KUMO_E_CONFLICT", "changed", { details: [{ field: "metadata.resourceVersion", message: "stale" }] });
    expect(e.status).toBe(409);
    expect(e.fault).toBe("user");
    expect(e.toBody()).toEqual({ error: { code: "KUMO_E_CONFLICT", message: "changed", details: [{ field: "metadata.resourceVersion", message: "stale" }] } });
  });

  it("wraps unknown errors as internal ones", () => {
    const e = toKumoError(new TypeError("nope"));
    expect(e.code).toBe("KUMO_E_INTERNAL");
    expect(e.status).toBe(500);
    expect(e.message).toContain("nope");
  });
});
