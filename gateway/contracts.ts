import type { AccountType, Computer, Protocol, SessionRecord } from '../core/domain.js';
import type { SessionLogin } from '../provisioner/jit-account.service.js';
import type { Principal } from './auth/principal.js';

/**
 * Interfaces that cross gateway modules (auth, API, SSH, RDP, web), so each
 * is built and tested on its own and wired together only in main.ts.
 */

/** Authorization for opening sessions (implemented in gateway/access-policy.ts). */
export interface AccessChecker {
  /**
   * The computer `ref` (id or name) if `principal` may open a session on it
   * with `protocol`. Throws JIT_ERR_ACCESS_DENIED (403, message "you do not
   * have access to <computer>", audited as access.denied) or
   * JIT_ERR_NOT_FOUND (404, only when the person could see it anyway).
   */
  computerForConnect(principal: Principal, ref: string, protocol: Protocol): Promise<Computer>;
}

export interface OpenSessionRequest {
  principal: Principal;
  /** Computer id or name. */
  computerRef: string;
  protocol: Protocol;
  /** Needed when the computer lets the person choose (accountType `choose`). */
  accountType?: AccountType;
  minutes?: number;
  /** 'web' | 'ssh-front-door' | 'cli' — audited. */
  via: string;
  /**
   * Called once access is granted, before provisioning starts: the proxies
   * open the connection to the computer (TCP, key exchange, host key) while
   * the JIT account is being made, and log in when `open` resolves.
   */
  onAccessGranted?: (computer: Computer) => void;
  /**
   * Called with the computer once access is granted, before anything is
   * provisioned (and before `onAccessGranted`): throwing refuses the session
   * with that error, nothing is provisioned. The SSH front door refuses here
   * the channels the computer's policy does not allow (file transfer, forwarding);
   * the RDP tunnel refuses when guacd lacks a parameter the policy needs.
   */
  admit?: (computer: Computer) => void | Promise<void>;
}

/** A provisioned session the gateway proxies (SSH or RDP). */
export interface OpenedSession {
  readonly session: SessionRecord;
  readonly computer: Computer;
  /** The injected credentials, never sent to the person; `password: null` for an elevated session (the person types their own in the remote login). */
  readonly credentials: SessionLogin;
  /** The lease end now (later than `session.leaseExpiresAt` once the session was extended); absent → that one. */
  currentLeaseEnd?(): Promise<Date>;
  /** Register what to do when the session must close from outside (admin terminate, lease expiry). */
  onTerminate(cb: (reason: 'terminated' | 'lease-expired', by: string) => void): void;
  /** Tell the engine the login happened (erases the stored password of per-session accounts). */
  loggedIn(): Promise<void>;
  /** End the session: enqueue teardown (idempotent), close live watchers. */
  end(reason: string): Promise<void>;
  /** Somebody started or stopped watching this session live (the person is told); absent where nobody can watch. */
  onWatchers?(cb: (change: { count: number; event: 'joined' | 'left'; by: string }) => void): void;
  /** RDP: guacd's connection id, published in the live list so an admin can join it read-only (gateway/rdp/rdp-watch.ts). */
  setGuacdConnection?(id: string): Promise<void>;
  /** A four-eyes session's gate (its computer requires a moderator); absent or null: not moderated. */
  readonly moderation?: SessionGate | null;
  /** What the recording's metadata says from the start (break-glass window, moderation so far). */
  recordingMetadata?(): Promise<Record<string, unknown>>;
}

// ---- four-eyes sessions (gateway/access-requests/moderation.ts) ----

export type ModerationState = 'waiting' | 'active' | 'paused' | 'ended';

/** What the person (and the recording) is told about moderation. */
export interface ModerationStatus {
  state: ModerationState;
  /** Logins of the moderators watching now. */
  moderators: string[];
  /** While paused: when the session ends unless a moderator rejoins. */
  graceEndsAt?: string;
  message: string;
}

/** One step of a moderated session (recording metadata `moderation`, audit `session.moderation`). */
export interface PresenceEvent {
  at: string;
  event: 'waiting' | 'joined' | 'left' | 'paused' | 'resumed' | 'ended';
  by?: string;
  graceEndsAt?: string;
  reason?: string;
}

/** A watcher started or stopped watching (from the live registry). */
export interface WatcherChange {
  event: 'joined' | 'left';
  by: string;
  personId?: string;
}

/** The four-eyes rule of one session (gateway/access-requests/moderation-gate.ts). */
export interface SessionGate {
  readonly state: ModerationState;
  /** True once a moderator joined (the proxy may log in); false if the session ended first. */
  admitted(): Promise<boolean>;
  /** Whether the person's input may reach the computer now (a moderator is present). */
  inputAllowed(): boolean;
  /** Called at once with the status, then on every change. */
  onStatus(cb: (s: ModerationStatus) => void): void;
  /** The status now (what onStatus last said). */
  status(): ModerationStatus;
  log(): readonly PresenceEvent[];
  watchers(change: WatcherChange): void;
  close(): void;
}

/** Builds the gate of a session whose computer requires a moderator (wired into the session broker). */
export interface SessionModeration {
  /** The gate, or null when the computer does not require a moderator. `end` closes the session. */
  gateFor(s: { sessionId: string; computer: Computer; personId: string; personLogin: string; protocol: Protocol }, end: (reason: string) => void): SessionGate | null;
  /** Recording metadata known when a session starts: the access-request window it runs in (break-glass flagged). */
  windowMetadata(s: { computerId: string; personId: string }): Promise<Record<string, unknown>>;
}

/** Provisioning progress shown to the person ("creating account…", "adding to JIT Admins…"). */
export type ProgressFn = (step: string) => void;

/** Opens sessions: access check, JIT provisioning via the job queue, credentials (gateway/sessions). */
export interface SessionBroker {
  open(req: OpenSessionRequest, onProgress: ProgressFn): Promise<OpenedSession>;
}

export interface LiveSessionInfo {
  sessionId: string;
  personLogin: string;
  computerName: string;
  protocol: Protocol;
  account: string | null;
  startedAt: string;
  /** gateway instance that holds the connection */
  gateway: string;
  /** The person, and the sign-in that opened it (web sign-in id, or `ssh:<connection>`): ending a sign-in ends what it opened. */
  personId?: string;
  authSessionId?: string;
}

/** Live sessions across every gateway sharing the Redis (gateway/sessions). */
export interface LiveSessions {
  list(): Promise<LiveSessionInfo[]>;
  /** Close the session wherever it runs; resolves true when some gateway held it. */
  terminate(sessionId: string, by: string): Promise<boolean>;
  /** Subscribe to a live session's terminal output (security teams watching); returns unsubscribe. */
  watch(sessionId: string, onData: (chunk: Buffer) => void, onEnd: () => void): Promise<() => void>;
}

/** What the SSH front door needs from the identity module (gateway/auth). */
export interface FrontDoorIdentity {
  /** The person whose registered key this is, if `login` owns it and may sign in. */
  personByPublicKey(login: string, algo: string, keyData: Buffer): Promise<Principal | null>;
  /** Check a TOTP (or one-time recovery) code for the person; counts failures and locks like the web sign-in. */
  verifySecondFactor(personId: string, code: string): Promise<boolean>;
  /**
   * When this key is registered to `login` and that person is locked out
   * (too many wrong codes or passwords): until when; else null. The front
   * door asks only after the key's signature verified, so the lock is told
   * to the key's holder and to nobody else.
   */
  keyOwnerLockedUntil?(login: string, algo: string, keyData: Buffer): Promise<Date | null>;
}
