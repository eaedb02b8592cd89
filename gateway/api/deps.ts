import type { AuditLog } from '../../core/audit.js';
import type { Database } from '../../core/db/database.js';
import type { AccessService } from '../access-policy.js';
import type { LiveSessions } from '../contracts.js';
import type { ExistingAccount } from '../../provisioner/account-store.js';
import type { StoreScope } from '../../provisioner/store-scope.js';
import type { GuacdRdpArgsSource } from './guacd-pinning.js';

/** An account store as the API shows it: never its credentials. Its scope says who may use it (provisioner/store-scope.ts). */
export interface StoreInfo extends StoreScope {
  type: 'ldap' | 'ssh' | 'winrm';
  /** ldap(s):// URL, ssh://host:port or the WS-Management endpoint. */
  url: string;
  /** The store's rule for a person's existing account (`elevation.accountName`, `{login}` replaced); absent → `{login}`. */
  elevationAccountName?: string;
}

/** A recording's bytes, opened for download (implemented by recorder/). */
export interface OpenedRecording {
  stream: NodeJS.ReadableStream;
  /** e.g. `application/x-asciicast` for .cast, `application/octet-stream` for guacd files. */
  contentType: string;
  size: number;
  /** Result of checking the file against the signed manifest. */
  integrity: 'ok' | 'mismatch' | 'unsigned' | 'missing';
}

export interface RecordingFiles {
  /** Open the stored file; null when it is gone. */
  open(recordingId: string): Promise<OpenedRecording | null>;
  /** Integrity of one recording without opening a stream (list/get); null when unknown. recorder/'s Recorder implements both. */
  integrity?(recordingId: string): Promise<'ok' | 'mismatch' | 'unsigned' | 'missing' | null>;
}

export interface ApiDeps {
  db: Database;
  audit: AuditLog;
  access: AccessService;
  /** Configured account stores (see `storeInfos` for turning config into these); read per request, never copied. */
  stores: readonly StoreInfo[];
  /**
   * Read an existing account on a store, as elevation would (null: no such
   * account); absent → person-account mappings are saved unchecked and the
   * engine refuses a bad one at session start.
   */
  findExistingAccount?: (store: string, name: string) => Promise<ExistingAccount | null>;
  /** Reach one store (the engine's `checkStores()` filtered to `name`). */
  checkStore(name: string): Promise<{ ok: boolean; error?: string; timeBoundMembership?: boolean }>;
  liveSessions: LiveSessions;
  /** Enqueue the teardown of a session no gateway holds (terminate after a gateway died). */
  endSession?: (sessionId: string, reason: string) => Promise<void>;
  recordingFiles: RecordingFiles;
  /** Hash an initial password (default: argon2id via @node-rs/argon2, the format gateway/auth verifies). */
  hashPassword?: (password: string) => Promise<string>;
  /** End a person's sign-in sessions after disable, delete, role change or MFA reset (gateway/auth). */
  revokeAuthSessions?: (personId: string) => Promise<void>;
  /** Move an active session's lease end later (engine + lease-expiry job). */
  extendSession: (sessionId: string, minutes: number, actor: string) => Promise<{ leaseExpiresAt: Date }>;
  /** The configured guacd's RDP parameters (refuse a pinned certificate it cannot honour); absent → not checked. */
  guacd?: GuacdRdpArgsSource;
  /** Signed evidence bundles of sessions (recorder/evidence-export.ts, docs/evidence.md); absent → 404. */
  evidence?: EvidenceSource;
}

/** Exports a session's evidence bundle (the caller authorizes and audits) and names the key that signs it. */
export interface EvidenceSource {
  /** The bundle as a JSON-serialisable object; null when there is no such session. */
  export(sessionId: string, exportedBy: string): Promise<object | null>;
  readonly publicKey: string;
  readonly fingerprint: string;
}
