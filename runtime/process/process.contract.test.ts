// The executor contract for the process backend: each instance a child Node process.
import { runExecutorContract } from "../../test/contract/executor.contract.ts";
import { createProcessBackend } from "./index.ts";

runExecutorContract("process", () => createProcessBackend());
