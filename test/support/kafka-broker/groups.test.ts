// The test broker's group coordinator on its own: rebalances on join, eviction of a member whose
// session expired, and Kafka's rules for when offset commits are accepted.

import { afterEach, describe, expect, it } from "vitest";
import { GroupCoordinator, GroupError, type JoinRequest } from "./groups.ts";

const coordinators: GroupCoordinator[] = [];
afterEach(() => {
  for (const c of coordinators.splice(0)) c.close();
});

function coordinator(): GroupCoordinator {
  const c = new GroupCoordinator({ initialRebalanceDelayMs: 0 });
  coordinators.push(c);
  return c;
}

function join(memberId = "", extra: Partial<JoinRequest> = {}): JoinRequest {
  return {
    groupId: "g",
    memberId,
    clientId: "c",
    sessionTimeoutMs: 10_000,
    rebalanceTimeoutMs: 10_000,
    protocolType: "consumer",
    protocols: [{ name: "RoundRobinAssigner", metadata: Buffer.from("m") }],
    ...extra,
  };
}

describe("group coordinator", () => {
  it("rebalances when a member joins, once every known member has rejoined", async () => {
    const groups = coordinator();
    const a = await groups.join(join());
    expect(a).toMatchObject({ errorCode: 0, generationId: 1, leaderId: a.memberId });
    expect((await groups.sync("g", 1, a.memberId, [{ memberId: a.memberId, assignment: Buffer.from("all") }])).assignment.toString()).toBe("all");

    let bDone = false;
    const bJoin = groups.join(join()).then((r) => {
      bDone = true;
      return r;
    });
    expect(groups.heartbeat("g", 1, a.memberId)).toBe(GroupError.REBALANCE_IN_PROGRESS);
    await new Promise((r) => setTimeout(r, 20));
    expect(bDone).toBe(false);

    const aAgain = await groups.join(join(a.memberId));
    const b = await bJoin;
    expect(aAgain).toMatchObject({ generationId: 2, leaderId: a.memberId });
    expect(aAgain.members.map((m) => m.memberId).sort()).toEqual([a.memberId, b.memberId].sort());
    expect(b).toMatchObject({ generationId: 2, leaderId: a.memberId, members: [] });

    const bSync = groups.sync("g", 2, b.memberId, []);
    const aSync = await groups.sync("g", 2, a.memberId, [
      { memberId: a.memberId, assignment: Buffer.from("half-a") },
      { memberId: b.memberId, assignment: Buffer.from("half-b") },
    ]);
    expect(aSync.assignment.toString()).toBe("half-a");
    expect((await bSync).assignment.toString()).toBe("half-b");
    expect(groups.heartbeat("g", 2, b.memberId)).toBe(GroupError.NONE);
    expect(groups.heartbeat("g", 1, b.memberId)).toBe(GroupError.ILLEGAL_GENERATION);
  });

  it("evicts a member whose session expires, so a rebalance does not wait for it", async () => {
    const groups = coordinator();
    const a = await groups.join(join("", { sessionTimeoutMs: 100 }));
    await groups.sync("g", 1, a.memberId, []);
    // a never heartbeats or rejoins again.
    const b = await groups.join(join());
    expect(b).toMatchObject({ errorCode: 0, generationId: 2, leaderId: b.memberId });
    expect(b.members.map((m) => m.memberId)).toEqual([b.memberId]);
    expect(groups.heartbeat("g", 1, a.memberId)).toBe(GroupError.UNKNOWN_MEMBER_ID);
  });

  it("accepts commits as Kafka does: current generation while stable or preparing, not while awaiting sync", async () => {
    const groups = coordinator();
    expect(groups.commitCheck("g", -1, "")).toBe(GroupError.NONE);
    const a = await groups.join(join());
    expect(groups.commitCheck("g", 1, a.memberId)).toBe(GroupError.REBALANCE_IN_PROGRESS);
    await groups.sync("g", 1, a.memberId, []);
    expect(groups.commitCheck("g", 1, a.memberId)).toBe(GroupError.NONE);
    expect(groups.commitCheck("g", -1, "")).toBe(GroupError.UNKNOWN_MEMBER_ID);
    void groups.join(join());
    expect(groups.commitCheck("g", 1, a.memberId)).toBe(GroupError.NONE);
    expect(groups.commitCheck("g", 0, a.memberId)).toBe(GroupError.ILLEGAL_GENERATION);
    expect(groups.commitCheck("g", 1, "stranger")).toBe(GroupError.UNKNOWN_MEMBER_ID);
  });
});
