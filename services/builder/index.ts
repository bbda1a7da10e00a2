// The builder: packs a function folder into a deterministic source archive, unpacks it safely,
// and bundles it with esbuild into one content-addressed ES module.
export { packSource, unpackSource, DEFAULT_MAX_SOURCE_BYTES } from "./archive.ts";
export type { PackedSource } from "./archive.ts";
export { buildFunction } from "./build.ts";
export type { BuildOptions, BuildResult, BuildRuntime } from "./build.ts";
export { digestOf } from "./digest.ts";
