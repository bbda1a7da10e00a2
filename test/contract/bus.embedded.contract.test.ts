// Runs the EventBus contract on the embedded bus: a SQLite database (WAL) in a temp directory,
// reopened from the same file to stand for a restart.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { createEmbeddedBus } from "../../services/bus/index.ts";
import type { EmbeddedBus } from "../../services/bus/index.ts";
import { runBusContract } from "./bus.contract.ts";

runBusContract("embedded (SQLite)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kumo-bus-contract-"));
  const open = (): { db: DatabaseSync; bus: EmbeddedBus } => {
    const db = new DatabaseSync(join(dir, "kumo.db"));
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    return { db, bus: createEmbeddedBus({ db }) };
  };
  let current = open();
  const close = async (): Promise<void> => {
    await current.bus.close();
    current.db.close();
  };
  return {
    bus: current.bus,
    reopen: async () => {
      await close();
      current = open();
      return current.bus;
    },
    cleanup: async () => {
      await close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
