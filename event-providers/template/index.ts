// A template EventProvider to copy when adding a source (CONTRIBUTING.md). Not started by kumo server.
export { TemplateProvider, type TemplateProviderOptions } from "./provider.ts";
