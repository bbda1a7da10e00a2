import { describe, expect, it } from "vitest";
import { PartitionProgress } from "./progress.ts";

describe("PartitionProgress", () => {
  it("commits only the contiguous prefix of finished records", () => {
    const p = new PartitionProgress();
    p.add("10", 1);
    p.add("11", 2);
    p.add("12", 1);
    expect(p.complete("12")).toBeUndefined(); // 10 and 11 are still out
    expect(p.complete("11")).toBeUndefined(); // 11 needs two completions
    expect(p.complete("10")).toBe("11");
    expect(p.inFlight).toBe(2);
    expect(p.complete("11")).toBe("13"); // 11 done, and 12 was already done
    expect(p.inFlight).toBe(0);
    expect(p.position).toBe("13");
  });

  it("advances at once over records no trigger wants, but not past an unfinished one", () => {
    const p = new PartitionProgress();
    expect(p.add("0", 0)).toBe("1");
    p.add("1", 1);
    expect(p.add("2", 0)).toBeUndefined();
    expect(p.complete("1")).toBe("3");
  });

  it("ignores completions of unknown or already finished records", () => {
    const p = new PartitionProgress();
    p.add("5", 1);
    expect(p.complete("4")).toBeUndefined();
    expect(p.complete("5")).toBe("6");
    expect(p.complete("5")).toBeUndefined();
    expect(p.has("5")).toBe(false);
  });

  it("keeps working over a long run (prefix compaction)", () => {
    const p = new PartitionProgress();
    let last: string | undefined;
    for (let i = 0; i < 5000; i++) {
      p.add(String(i), 1);
      last = p.complete(String(i)) ?? last;
    }
    expect(last).toBe("5000");
    expect(p.inFlight).toBe(0);
  });
});
