import type { ModerationState, ModerationStatus, PresenceEvent, SessionGate, WatcherChange } from '../contracts.js';

/**
 * The four-eyes rule of one session (docs/access-requests.md "Four-eyes
 * sessions"), as a state machine without I/O: moderation.ts says who counts
 * as a moderator and writes what happens to the audit trail and the
 * recording's metadata; the proxies (browser terminal, SSH front door, RDP
 * tunnel) ask it whether to log in yet and whether input may pass.
 *
 *   waiting ──moderator joins──▶ active ──last moderator leaves──▶ paused
 *      │                           ▲                                 │
 *      │ no moderator in time      └────────moderator rejoins────────┤
 *      ▼                                                              ▼ grace over
 *    ended ◀──────────────────────────────────────────────────────── ended
 *
 * Watcher changes are applied one at a time in arrival order (each waits for
 * its eligibility check), so a quick join-leave cannot be counted out of
 * order. The same person watching twice counts once until both views left.
 */
export interface ModerationGateOptions {
  /** Paused this long without a moderator: the session ends. */
  graceMs: number;
  /** Waiting this long for the first moderator: the session ends. */
  waitMs: number;
  /** Whether this watcher (person id) may moderate the session: an approver of its organization, never the person. */
  isModerator(personId: string): Promise<boolean>;
  /** Every step, in order, with the status after it (audit, recording metadata). */
  onEvent(e: PresenceEvent, status: ModerationStatus): void;
  /** End the session (grace over, or nobody came): the proxy closes it like a terminate. */
  end(reason: string): void;
  now?: () => Date;
}

export class ModerationGate implements SessionGate {
  readonly #o: ModerationGateOptions;
  #state: ModerationState = 'waiting';
  /** Moderators watching now: person id → login and how many views they have open. */
  readonly #present = new Map<string, { login: string; views: number }>();
  readonly #log: PresenceEvent[] = [];
  readonly #statusCbs: ((s: ModerationStatus) => void)[] = [];
  #timer: NodeJS.Timeout | null = null;
  #graceEndsAt: Date | null = null;
  #queue: Promise<void> = Promise.resolve();
  #resolveAdmitted!: (ok: boolean) => void;
  readonly #admitted = new Promise<boolean>((r) => (this.#resolveAdmitted = r));

  constructor(o: ModerationGateOptions) {
    this.#o = o;
    this.#step({ event: 'waiting' });
    this.#arm(o.waitMs, `no moderator joined within ${describe(o.waitMs)}`);
  }

  get state(): ModerationState {
    return this.#state;
  }

  admitted(): Promise<boolean> {
    return this.#admitted;
  }

  inputAllowed(): boolean {
    return this.#state === 'active';
  }

  onStatus(cb: (s: ModerationStatus) => void): void {
    this.#statusCbs.push(cb);
    cb(this.status());
  }

  log(): readonly PresenceEvent[] {
    return this.#log;
  }

  status(): ModerationStatus {
    const moderators = [...this.#present.values()].map((p) => p.login);
    switch (this.#state) {
      case 'waiting':
        return { state: 'waiting', moderators, message: 'waiting for a moderator: an approver of this organization must join the session as observer before it connects' };
      case 'active':
        return { state: 'active', moderators, message: `moderated by ${moderators.join(', ')}` };
      case 'paused': {
        const at = this.#graceEndsAt ?? this.#now();
        return {
          state: 'paused', moderators, graceEndsAt: at.toISOString(),
          message: `paused: the moderator left, input is blocked; the session ends at ${at.toISOString().slice(11, 19)} UTC unless a moderator rejoins`,
        };
      }
      default:
        return { state: 'ended', moderators, message: this.#log.at(-1)?.reason ?? 'ended' };
    }
  }

  watchers(change: WatcherChange): void {
    this.#queue = this.#queue.then(() => this.#apply(change)).catch(() => undefined);
  }

  /** The session ended (for whatever reason): stop the timers; nothing more is recorded. */
  close(): void {
    this.#clear();
    if (this.#state !== 'ended') this.#state = 'ended';
    this.#resolveAdmitted(false);
  }

  async #apply(c: WatcherChange): Promise<void> {
    if (this.#state === 'ended' || !c.personId) return;
    const known = this.#present.get(c.personId);
    if (c.event === 'joined') {
      if (known) {
        known.views++;
        return;
      }
      const ok = await this.#o.isModerator(c.personId).catch(() => false);
      // The session may have ended during the check.
      if (!ok || this.state === 'ended') return;
      // Checked while another view of the same person was being checked: count the view only.
      const again = this.#present.get(c.personId);
      if (again) {
        again.views++;
        return;
      }
      this.#present.set(c.personId, { login: c.by, views: 1 });
      const was = this.#state;
      this.#state = 'active';
      this.#clear();
      this.#step({ event: 'joined', by: c.by });
      if (was === 'waiting') this.#resolveAdmitted(true);
      if (was === 'paused') this.#step({ event: 'resumed', by: c.by });
      return;
    }
    if (!known) return;
    if (--known.views > 0) return;
    this.#present.delete(c.personId);
    const pause = this.#present.size === 0 && this.#state === 'active';
    // Paused from the moment the last moderator is gone (the `left` step already says so).
    if (pause) {
      this.#state = 'paused';
      this.#graceEndsAt = new Date(this.#now().getTime() + this.#o.graceMs);
    }
    this.#step({ event: 'left', by: c.by });
    if (pause && this.#graceEndsAt) {
      this.#step({ event: 'paused', graceEndsAt: this.#graceEndsAt.toISOString() });
      this.#arm(this.#o.graceMs, `no moderator rejoined within ${describe(this.#o.graceMs)}`);
    }
  }

  #arm(ms: number, reason: string): void {
    this.#clear();
    this.#timer = setTimeout(() => {
      if (this.#state === 'ended') return;
      this.#state = 'ended';
      this.#step({ event: 'ended', reason });
      this.#resolveAdmitted(false);
      this.#o.end(reason);
    }, ms);
    this.#timer.unref();
  }

  #clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#state !== 'paused') this.#graceEndsAt = null;
  }

  #step(e: Omit<PresenceEvent, 'at'>): void {
    const ev: PresenceEvent = { at: this.#now().toISOString(), ...e };
    this.#log.push(ev);
    const s = this.status();
    try {
      this.#o.onEvent(ev, s);
    } catch {
      // recording the step must not stop the rule
    }
    for (const cb of this.#statusCbs) {
      try {
        cb(s);
      } catch {
        // one listener's failure must not stop the others
      }
    }
  }

  #now(): Date {
    return this.#o.now?.() ?? new Date();
  }
}

function describe(ms: number): string {
  const s = Math.round(ms / 1000);
  return s % 60 === 0 && s >= 60 ? `${s / 60} minute${s === 60 ? '' : 's'}` : `${s} second${s === 1 ? '' : 's'}`;
}
