/** Domain types shared by the gateway, the provisioner and the CLI. */

export type Protocol = 'ssh' | 'rdp';
export type AccountType = 'domain' | 'local';
export type SessionState = 'pending' | 'provisioning' | 'active' | 'ending' | 'ended' | 'failed';
export type JitAccountState = 'creating' | 'active' | 'idle' | 'deleted' | 'failed';

export const LIVE_SESSION_STATES: readonly SessionState[] = ['pending', 'provisioning', 'active', 'ending'];

export interface Organization {
  id: string;
  name: string;
  sharedCode: string;
}

export interface Computer {
  id: string;
  organizationId: string;
  name: string;
  address: string;
  protocols: Protocol[];
  sshPort: number;
  rdpPort: number;
  domainStore: string | null;
  localStore: string | null;
  /** Raw JIT settings; validated by provisioner/jit-settings.ts. */
  jit: unknown;
  policy: Record<string, unknown>;
  restricted: boolean;
  /** Labels (`env=prod`, migration 20); team grants select computers by them. */
  labels?: Readonly<Record<string, string>>;
}

export interface SessionRecord {
  id: string;
  personId: string | null;
  personLogin: string;
  computerId: string | null;
  computerName: string;
  protocol: Protocol;
  accountType: AccountType | 'existing';
  accountId: string | null;
  accountName: string | null;
  store: string | null;
  state: SessionState;
  leaseExpiresAt: Date;
  groups: string[];
  createdAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
  endReason: string | null;
  errorCode: string | null;
  /** Who holds the session open: `gateway:<id>` (browser, RDP, front door), or null (`jitgate checkout`). */
  holder: string | null;
}

export interface JitAccountRecord {
  id: string;
  store: string;
  name: string;
  mode: 'named' | 'shared';
  ownerKey: string;
  personId: string | null;
  organizationId: string | null;
  computerId: string | null;
  state: JitAccountState;
  passwordEnc: string | null;
  groups: string[];
  keep: boolean;
  /** Where the store created the account (the LDAP DN); null where the name says it all. */
  location: string | null;
  createdAt: Date;
  updatedAt: Date;
}
