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
  /** RDP: guacd's connection id, published in the live list so an admin can join it read-only (gateway/rdp/rdp-watch.ts). */
  setGuacdConnection?(id: string): Promise<void>;
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
