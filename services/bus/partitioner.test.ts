import { describe, expect, it } from "vitest";
import { murmur2, partitionForKey } from "./partitioner.ts";

const encoder = new TextEncoder();

describe("partitioner", () => {
  it.each([
    // The vectors of Kafka's own UtilsTest.testMurmur2.
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
    ["abc", 479470107],
  ])("murmur2(%j) is Kafka's %i", (key, hash) => {
    expect(murmur2(encoder.encode(key))).toBe(hash);
  });

  it("picks the partition as Kafka's default partitioner does (positive hash modulo count)", () => {
    expect(partitionForKey("21", 7)).toBe((-973932308 & 0x7fffffff) % 7);
    expect(partitionForKey("abc", 3)).toBe(479470107 % 3);
    for (const key of ["vm-1", "é☁", ""]) {
      const p = partitionForKey(key, 5);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(5);
      expect(partitionForKey(key, 5)).toBe(p);
    }
  });
});
