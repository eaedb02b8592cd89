import type { Computer } from '../../core/domain.js';
import type { Credentials } from '../../provisioner/jit-account.service.js';
import { effectivePolicy, type ComputerPolicy } from '../api/computer-policy.js';

/**
 * guacd RDP connection parameters, built on the server after provisioning.
 * Names and values: Guacamole manual, "Configuring Guacamole" → RDP.
 * Booleans are always sent explicitly as "true"/"false": guacd treats an
 * empty value as "use the default" (guacamole-lite sends false as "", which
 * leaves e.g. the clipboard enabled).
 */

/** The RDP-relevant part of the computer's policy (gateway/api/computer-policy.ts). */
export interface RdpPolicy {
  security: ComputerPolicy['rdpSecurity'];
  /** Accept any server certificate (explicit opt-in). */
  ignoreCert: boolean;
  /** Pinned SHA-256 fingerprint in FreeRDP's `CertificateAcceptedFingerprints` form (`sha256:aa:bb:…`). */
  certFingerprint: string | null;
  clipboard: boolean;
  drive: boolean;
  printing: boolean;
}

/**
 * FreeRDP (which guacd passes `cert-fingerprints` to) compares
 * `<algorithm>:<colon-separated hex>` case-insensitively.
 */
export function freerdpFingerprint(fp: string): string {
  const hex = fp.replace(/:/g, '').toLowerCase();
  return `sha256:${hex.match(/../g)?.join(':') ?? ''}`;
}

/**
 * The effective policy (a stored value that does not validate falls back to
 * the safe default field by field): NLA, certificate verified, clipboard,
 * drive and printing off unless allowed.
 */
export function parseRdpPolicy(stored: unknown): RdpPolicy {
  const p = effectivePolicy(stored);
  const fp = p.rdpCertFingerprint ? freerdpFingerprint(p.rdpCertFingerprint) : null;
  return {
    security: p.rdpSecurity,
    // A pinned certificate wins over "ignore": never weaker than what the admin pinned.
    ignoreCert: fp ? false : p.rdpIgnoreCert,
    certFingerprint: fp,
    clipboard: p.clipboard,
    drive: p.drive,
    printing: p.printing,
  };
}

export interface RdpParamsInput {
  computer: Pick<Computer, 'name' | 'address' | 'rdpPort' | 'policy'>;
  credentials: Credentials;
  /** Where guacd writes the recording; null → no recording parameters. */
  recording: { path: string; name: string } | null;
  /** guacd's directory for per-session redirected drives (when the policy allows drives). */
  driveRoot: string;
  sessionId: string;
  resizeMethod?: 'display-update' | 'reconnect';
}

export interface RdpParams {
  params: Record<string, string>;
  /** Parameters guacd must understand or the session is refused. */
  required: Set<string>;
  policy: RdpPolicy;
}

const tf = (b: boolean): string => (b ? 'true' : 'false');

/** Parameters every RDP session sends and guacd must understand (security-relevant or needed to log in). */
const ALWAYS_REQUIRED = ['hostname', 'port', 'username', 'password', 'security', 'ignore-cert', 'disable-copy', 'disable-paste', 'enable-drive', 'enable-printing'];

/**
 * The guacd parameters a computer's policy needs (from its stored policy
 * alone, so it can be checked before anything is provisioned, and by
 * `jitgate check`): a pinned certificate needs `cert-fingerprints` (guacd
 * 1.6.0+), an allowed drive `drive-path`, a recording `recording-path` and
 * `recording-name`. `domain` comes from the credentials and every guacd has it.
 */
export function guacdParamsNeeded(storedPolicy: unknown, opts: { recording: boolean } = { recording: true }): Set<string> {
  const policy = parseRdpPolicy(storedPolicy);
  const needed = new Set(ALWAYS_REQUIRED);
  if (policy.certFingerprint) needed.add('cert-fingerprints');
  if (policy.drive) needed.add('drive-path');
  if (opts.recording) {
    needed.add('recording-path');
    needed.add('recording-name');
  }
  return needed;
}

/**
 * Who logs in. A domain account with a NetBIOS domain configured on its
 * store goes as `domain=<NETBIOS>` + the plain sAMAccountName (FreeRDP
 * builds `DOMAIN\name` itself). Without a NetBIOS domain but with a UPN
 * (the LDAP store sets `userPrincipalName = name@upnSuffix` on every
 * account it creates) it goes as `username=name@suffix`, domain empty:
 * NTLM/CredSSP accept a UPN with no domain ([MS-NLMP] 3.1.5.1.2), while a
 * bare name would be looked up among the computer's local accounts.
 * A local account carries neither.
 */
export function rdpLogin(c: Credentials): { username: string; domain: string | null } {
  if (c.domain) return { username: c.username, domain: c.domain };
  if (c.upn) return { username: c.upn, domain: null };
  return { username: c.username, domain: null };
}

export function buildRdpParams(input: RdpParamsInput): RdpParams {
  const policy = parseRdpPolicy(input.computer.policy);
  const c = input.credentials;
  const login = rdpLogin(c);
  const params: Record<string, string> = {
    hostname: input.computer.address,
    port: String(input.computer.rdpPort),
    username: login.username,
    password: c.password.reveal(),
    security: policy.security,
    'ignore-cert': tf(policy.ignoreCert),
    'resize-method': input.resizeMethod ?? 'display-update',
    'disable-copy': tf(!policy.clipboard),
    'disable-paste': tf(!policy.clipboard),
    'enable-drive': tf(policy.drive),
    'enable-printing': tf(policy.printing),
    // Never record keystrokes: they can contain secrets typed in the session.
    'recording-include-keys': 'false',
  };
  const required = guacdParamsNeeded(input.computer.policy, { recording: input.recording !== null });
  if (login.domain) {
    params['domain'] = login.domain;
    required.add('domain');
  }
  if (policy.certFingerprint) params['cert-fingerprints'] = policy.certFingerprint;
  if (policy.drive) {
    params['drive-path'] = `${input.driveRoot.replace(/\/+$/, '')}/${input.sessionId}`;
    params['create-drive-path'] = 'true';
  }
  if (input.recording) {
    params['recording-path'] = input.recording.path;
    params['recording-name'] = input.recording.name;
    params['create-recording-path'] = 'true';
  }
  return { params, required, policy };
}
