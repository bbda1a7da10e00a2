// The executor contract for the isolate backend, in both dispatch modes.
import { runExecutorContract } from "../../test/contract/executor.contract.ts";
import { createIsolateBackend } from "./index.ts";

runExecutorContract("isolate (auto dispatch)", () => createIsolateBackend());
runExecutorContract("isolate (thread dispatch)", () => createIsolateBackend({ dispatch: "thread" }));
