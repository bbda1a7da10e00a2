// The model: Kumo's resources, their validation, the error catalogue and the clock. Everything
// else imports these from here.
export * from "./errors.ts";
export * from "./resources.ts";
export * from "./validation.ts";
export * from "./clock.ts";
export * from "./instance.ts";
export * from "./events.ts";
