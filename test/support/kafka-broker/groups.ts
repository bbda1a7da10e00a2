// The test broker's group coordinator: Kafka's classic consumer-group protocol (JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup, offset commits) for one node, kept in memory. A join starts
// a rebalance; the join phase completes once every known member has rejoined (or the rebalance
// timeout evicts the ones that did not), then the leader's SyncGroup hands out assignments.

import { randomUUID } from "node:crypto";

/** Kafka error codes the coordinator answers with. */
export const GroupError = {
  NONE: 0,
  ILLEGAL_GENERATION: 22,
  INCONSISTENT_GROUP_PROTOCOL: 23,
  UNKNOWN_MEMBER_ID: 25,
  REBALANCE_IN_PROGRESS: 27,
} as const;

/** What a JoinGroup request gets back. */
export interface JoinResult {
  errorCode: number;
  generationId: number;
  protocol: string;
  leaderId: string;
  memberId: string;
  /** Every member's metadata, for the leader only (it computes the assignment). */
  members: { memberId: string; metadata: Buffer }[];
}

/** What a SyncGroup request gets back. */
export interface SyncResult {
  errorCode: number;
  assignment: Buffer;
}

/** A join request's parameters. */
export interface JoinRequest {
  groupId: string;
  memberId: string;
  clientId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: { name: string; metadata: Buffer }[];
}

interface Member {
  id: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocols: { name: string; metadata: Buffer }[];
  lastSeen: number;
  assignment: Buffer;
  pendingJoin: ((r: JoinResult) => void) | undefined;
  pendingSync: ((r: SyncResult) => void) | undefined;
}

interface Group {
  id: string;
  state: "empty" | "preparing" | "awaiting-sync" | "stable";
  generation: number;
  protocolType: string;
  protocol: string;
  leader: string;
  members: Map<string, Member>;
  /** Committed offsets by `topic\0partition`. */
  offsets: Map<string, bigint>;
  /** A join may complete only after this time (an initial delay gathers simultaneous joiners). */
  joinReadyAt: number;
  timers: NodeJS.Timeout[];
}

/** Coordinator options. */
export interface CoordinatorOptions {
  /** How long an empty group waits for more members before its first generation (Kafka: group.initial.rebalance.delay.ms). */
  initialRebalanceDelayMs: number;
}

const EMPTY = Buffer.alloc(0);

/** Consumer groups and their committed offsets. */
export class GroupCoordinator {
  private readonly groups = new Map<string, Group>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly options: CoordinatorOptions;

  constructor(options: CoordinatorOptions) {
    this.options = options;
    this.sweeper = setInterval(() => this.expireSessions(Date.now()), 50);
    this.sweeper.unref();
  }

  join(req: JoinRequest): Promise<JoinResult> {
    const group = this.group(req.groupId);
    const failed = (errorCode: number): Promise<JoinResult> =>
      Promise.resolve({ errorCode, generationId: -1, protocol: "", leaderId: "", memberId: req.memberId, members: [] });
    if (req.memberId !== "" && !group.members.has(req.memberId)) return failed(GroupError.UNKNOWN_MEMBER_ID);
    if (group.members.size > 0) {
      const others = [...group.members.values()].filter((m) => m.id !== req.memberId);
      const shared = req.protocols.some((p) => others.every((m) => m.protocols.some((q) => q.name === p.name)));
      if (req.protocolType !== group.protocolType || !shared) return failed(GroupError.INCONSISTENT_GROUP_PROTOCOL);
    }
    group.protocolType = req.protocolType;
    const id = req.memberId !== "" ? req.memberId : `${req.clientId}-${randomUUID()}`;
    const member: Member = group.members.get(id) ?? {
      id,
      sessionTimeoutMs: req.sessionTimeoutMs,
      rebalanceTimeoutMs: req.rebalanceTimeoutMs,
      protocols: req.protocols,
      lastSeen: Date.now(),
      assignment: EMPTY,
      pendingJoin: undefined,
      pendingSync: undefined,
    };
    member.sessionTimeoutMs = req.sessionTimeoutMs;
    member.rebalanceTimeoutMs = req.rebalanceTimeoutMs;
    member.protocols = req.protocols;
    member.lastSeen = Date.now();
    group.members.set(id, member);
    return new Promise((resolve) => {
      member.pendingJoin = resolve;
      this.prepareRebalance(group);
      this.maybeCompleteJoin(group);
    });
  }

  sync(groupId: string, generationId: number, memberId: string, assignments: { memberId: string; assignment: Buffer }[]): Promise<SyncResult> {
    const group = this.groups.get(groupId);
    const member = group?.members.get(memberId);
    if (group === undefined || member === undefined) return Promise.resolve({ errorCode: GroupError.UNKNOWN_MEMBER_ID, assignment: EMPTY });
    member.lastSeen = Date.now();
    if (generationId !== group.generation) return Promise.resolve({ errorCode: GroupError.ILLEGAL_GENERATION, assignment: EMPTY });
    if (group.state === "preparing") return Promise.resolve({ errorCode: GroupError.REBALANCE_IN_PROGRESS, assignment: EMPTY });
    if (group.state === "stable") return Promise.resolve({ errorCode: GroupError.NONE, assignment: member.assignment });
    return new Promise((resolve) => {
      member.pendingSync = resolve;
      if (memberId !== group.leader) return;
      const byMember = new Map(assignments.map((a) => [a.memberId, a.assignment]));
      group.state = "stable";
      for (const m of group.members.values()) {
        m.assignment = byMember.get(m.id) ?? EMPTY;
        m.lastSeen = Date.now();
        const reply = m.pendingSync;
        m.pendingSync = undefined;
        reply?.({ errorCode: GroupError.NONE, assignment: m.assignment });
      }
    });
  }

  heartbeat(groupId: string, generationId: number, memberId: string): number {
    const group = this.groups.get(groupId);
    const member = group?.members.get(memberId);
    if (group === undefined || member === undefined) return GroupError.UNKNOWN_MEMBER_ID;
    member.lastSeen = Date.now();
    if (generationId !== group.generation) return GroupError.ILLEGAL_GENERATION;
    if (group.state === "preparing") return GroupError.REBALANCE_IN_PROGRESS;
    return GroupError.NONE;
  }

  leave(groupId: string, memberId: string): number {
    const group = this.groups.get(groupId);
    const member = group?.members.get(memberId);
    if (group === undefined || member === undefined) return GroupError.UNKNOWN_MEMBER_ID;
    this.remove(group, member);
    return GroupError.NONE;
  }

  /**
   * Validates a commit as Kafka does: generation -1 (offsets only, no membership) needs an empty
   * group; a member may commit in its current generation while the group is stable and also while
   * it prepares a rebalance (so members can commit before they rejoin), not while awaiting sync.
   */
  commitCheck(groupId: string, generationId: number, memberId: string): number {
    const group = this.groups.get(groupId);
    if (generationId < 0 && (group === undefined || group.members.size === 0)) return GroupError.NONE;
    const member = group?.members.get(memberId);
    if (group === undefined || member === undefined) return GroupError.UNKNOWN_MEMBER_ID;
    member.lastSeen = Date.now();
    if (group.state === "awaiting-sync") return GroupError.REBALANCE_IN_PROGRESS;
    if (generationId !== group.generation) return GroupError.ILLEGAL_GENERATION;
    return GroupError.NONE;
  }

  commit(groupId: string, topic: string, partition: number, offset: bigint): void {
    this.group(groupId).offsets.set(`${topic}\0${partition}`, offset);
  }

  /** The committed offset, or -1 when there is none. */
  committed(groupId: string, topic: string, partition: number): bigint {
    return this.groups.get(groupId)?.offsets.get(`${topic}\0${partition}`) ?? -1n;
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const group of this.groups.values()) this.clearTimers(group);
  }

  private group(id: string): Group {
    let group = this.groups.get(id);
    if (group === undefined) {
      group = { id, state: "empty", generation: 0, protocolType: "", protocol: "", leader: "", members: new Map(), offsets: new Map(), joinReadyAt: 0, timers: [] };
      this.groups.set(id, group);
    }
    return group;
  }

  private prepareRebalance(group: Group): void {
    if (group.state === "preparing") return;
    const now = Date.now();
    if (group.state === "awaiting-sync") {
      // Members waiting for an assignment of the abandoned generation must rejoin.
      for (const m of group.members.values()) {
        const reply = m.pendingSync;
        m.pendingSync = undefined;
        reply?.({ errorCode: GroupError.REBALANCE_IN_PROGRESS, assignment: EMPTY });
      }
    }
    const delay = group.state === "empty" ? this.options.initialRebalanceDelayMs : 0;
    group.state = "preparing";
    group.joinReadyAt = now + delay;
    if (delay > 0) this.schedule(group, delay, () => this.maybeCompleteJoin(group));
    const rebalanceTimeout = Math.max(...[...group.members.values()].map((m) => m.rebalanceTimeoutMs));
    this.schedule(group, Math.max(rebalanceTimeout, delay), () => this.completeJoin(group));
  }

  private maybeCompleteJoin(group: Group): void {
    if (group.state !== "preparing" || Date.now() < group.joinReadyAt) return;
    if ([...group.members.values()].every((m) => m.pendingJoin !== undefined)) this.completeJoin(group);
  }

  private completeJoin(group: Group): void {
    if (group.state !== "preparing") return;
    this.clearTimers(group);
    // Members that did not rejoin within the rebalance timeout are out of the group.
    for (const m of group.members.values()) if (m.pendingJoin === undefined) group.members.delete(m.id);
    const members = [...group.members.values()];
    const first = members[0];
    if (first === undefined) {
      group.state = "empty";
      return;
    }
    group.generation += 1;
    if (!group.members.has(group.leader)) group.leader = first.id;
    const leader = group.members.get(group.leader) ?? first;
    group.protocol = leader.protocols.find((p) => members.every((m) => m.protocols.some((q) => q.name === p.name)))?.name ?? "";
    group.state = "awaiting-sync";
    const metadata = members.map((m) => ({ memberId: m.id, metadata: m.protocols.find((p) => p.name === group.protocol)?.metadata ?? EMPTY }));
    for (const m of members) {
      const reply = m.pendingJoin;
      m.pendingJoin = undefined;
      m.lastSeen = Date.now();
      m.assignment = EMPTY;
      reply?.({
        errorCode: GroupError.NONE,
        generationId: group.generation,
        protocol: group.protocol,
        leaderId: group.leader,
        memberId: m.id,
        members: m.id === group.leader ? metadata : [],
      });
    }
  }

  private remove(group: Group, member: Member): void {
    group.members.delete(member.id);
    member.pendingJoin?.({ errorCode: GroupError.UNKNOWN_MEMBER_ID, generationId: -1, protocol: "", leaderId: "", memberId: member.id, members: [] });
    member.pendingSync?.({ errorCode: GroupError.UNKNOWN_MEMBER_ID, assignment: EMPTY });
    if (group.members.size === 0) {
      this.clearTimers(group);
      group.state = "empty";
      return;
    }
    this.prepareRebalance(group);
    this.maybeCompleteJoin(group);
  }

  private expireSessions(now: number): void {
    for (const group of this.groups.values()) {
      for (const m of group.members.values()) {
        // A member waiting in JoinGroup is alive; the rebalance timeout bounds that wait instead.
        if (m.pendingJoin === undefined && now - m.lastSeen > m.sessionTimeoutMs) this.remove(group, m);
      }
    }
  }

  private schedule(group: Group, ms: number, run: () => void): void {
    const timer = setTimeout(run, ms);
    timer.unref();
    group.timers.push(timer);
  }

  private clearTimers(group: Group): void {
    for (const t of group.timers) clearTimeout(t);
    group.timers = [];
  }
}
