// The controller: reconciles Function specs into built, loaded, immutable Revisions.
export { Controller, makeRevision, needsReconcile, revisionName, type Builder, type ControllerDeps } from "./controller.ts";
