// Types for `ms` 2.x (which ships none), so the example type-checks with or without node_modules.
declare module "ms" {
  /** Parses "90m", "2 days", ... into milliseconds (NaN when it cannot). */
  function ms(value: string): number;
  /** Formats milliseconds as "2h", or "2 hours" with long. */
  function ms(value: number, options?: { long?: boolean }): string;
  export default ms;
}
