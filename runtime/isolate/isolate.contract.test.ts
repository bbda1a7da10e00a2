// The executor contract for the isolate backend, in every dispatch mode.
import { runExecutorContract } from "../../test/contract/executor.contract.ts";
import { createIsolateBackend } from "./index.ts";

runExecutorContract("isolate (auto dispatch)", () => createIsolateBackend());
// Promoted from the start; the cap sits above the contract's deadlines so they, not the cap, stop loops.
runExecutorContract("isolate (auto dispatch, promoted)", () => createIsolateBackend({ warmupInvocations: 0, inlineCapMs: 1_000 }));
runExecutorContract("isolate (thread dispatch)", () => createIsolateBackend({ dispatch: "thread" }));
runExecutorContract("isolate (inline dispatch)", () => createIsolateBackend({ dispatch: "inline" }));
