import type { Computer } from '../../core/domain.js';
import type { SessionLogin } from '../../provisioner/jit-account.service.js';
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
  /** Clipboard from the remote desktop to the person's computer (guacd → browser `clipboard` streams). */
  copy: boolean;
  /** Clipboard from the person's computer into the remote desktop (browser → guacd `clipboard` streams). */
  paste: boolean;
  clipboardMaxBytes: number;
  /** Drive redirection at all (guacd `enable-drive`). */
  drive: boolean;
  /** Files from the person's computer to the redirected drive (browser `file`/`put` streams). */
  upload: boolean;
  /** Files from the redirected drive to the person's computer (guacd `file`/`body` streams). */
  download: boolean;
  fileMaxBytes: number;
  printing: boolean;
  /** Typed keys in the recording (guacd `recording-include-keys`). */
  recordKeys: boolean;
  resizeMethod: ComputerPolicy['rdpResizeMethod'];
  colorDepth: number | null;
  timezone: string | null;
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
 * drive and printing off, keys not recorded unless allowed.
 */
export function parseRdpPolicy(stored: unknown): RdpPolicy {
  const p = effectivePolicy(stored);
  const fp = p.rdpCertFingerprint ? freerdpFingerprint(p.rdpCertFingerprint) : null;
  const drive = p.drive !== 'off';
  return {
    security: p.rdpSecurity,
    // A pinned certificate wins over "ignore": never weaker than what the admin pinned.
    ignoreCert: fp ? false : p.rdpIgnoreCert,
    certFingerprint: fp,
    copy: p.clipboard === 'both' || p.clipboard === 'remote-to-local',
    paste: p.clipboard === 'both' || p.clipboard === 'local-to-remote',
    clipboardMaxBytes: p.clipboardMaxBytes,
    drive,
    upload: p.drive === 'both' || p.drive === 'upload',
    download: p.drive === 'both' || p.drive === 'download',
    fileMaxBytes: p.fileMaxBytes,
    printing: p.printing,
    recordKeys: p.recordInput,
    resizeMethod: p.rdpResizeMethod,
    colorDepth: p.rdpColorDepth ?? null,
    timezone: p.rdpTimezone ?? null,
  };
}

export interface RdpParamsInput {
  computer: Pick<Computer, 'name' | 'address' | 'rdpPort' | 'policy'>;
  /** `password: null` (an elevated session, the person's own account): guacd gets the user name only and the Windows login asks. */
  credentials: SessionLogin;
  /** Where guacd writes the recording; null → no recording parameters. */
  recording: { path: string; name: string } | null;
  /** guacd's directory for per-session redirected drives (when the policy allows drives). */
  driveRoot: string;
  sessionId: string;
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
 * 1.6.0+), an allowed drive `drive-path`, a one-way drive the switch that
 * closes the other way (`disable-upload`/`disable-download`, 1.5.0+),
 * recorded keys `recording-include-keys`, a chosen colour depth or time zone
 * their parameter, a recording `recording-path` and `recording-name`.
 * `domain` comes from the credentials and every guacd has it.
 * `clipboard-buffer-size` (1.6.0+) is sent when guacd has it and never
 * required: the relay enforces the clipboard limit itself (rdp-streams.ts).
 */
export function guacdParamsNeeded(storedPolicy: unknown, opts: { recording: boolean } = { recording: true }): Set<string> {
  const policy = parseRdpPolicy(storedPolicy);
  const needed = new Set(ALWAYS_REQUIRED);
  if (policy.certFingerprint) needed.add('cert-fingerprints');
  if (policy.drive) needed.add('drive-path');
  if (policy.drive && !policy.upload) needed.add('disable-upload');
  if (policy.drive && !policy.download) needed.add('disable-download');
  if (policy.colorDepth !== null) needed.add('color-depth');
  if (policy.timezone !== null) needed.add('timezone');
  if (opts.recording) {
    needed.add('recording-path');
    needed.add('recording-name');
    if (policy.recordKeys) needed.add('recording-include-keys');
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
export function rdpLogin(c: SessionLogin): { username: string; domain: string | null } {
  if (c.domain) return { username: c.username, domain: c.domain };
  if ('upn' in c && c.upn) return { username: c.upn, domain: null };
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
    security: policy.security,
    'ignore-cert': tf(policy.ignoreCert),
    // guacd's default (an empty value) is no resizing at all.
    'resize-method': policy.resizeMethod === 'none' ? '' : policy.resizeMethod,
    'disable-copy': tf(!policy.copy),
    'disable-paste': tf(!policy.paste),
    // guacd clamps to 256 KiB … 50 MiB (1.6.0+ only); the relay cuts at the exact limit.
    'clipboard-buffer-size': String(policy.clipboardMaxBytes),
    'enable-drive': tf(policy.drive),
    'disable-upload': tf(!policy.upload),
    'disable-download': tf(!policy.download),
    'enable-printing': tf(policy.printing),
    // Keystrokes only when the policy says so: they can contain secrets typed in the session.
    'recording-include-keys': tf(policy.recordKeys),
  };
  // No password for the person's own account: nothing is injected, the Windows login screen asks them.
  if (c.password) params['password'] = c.password.reveal();
  if (policy.colorDepth !== null) params['color-depth'] = String(policy.colorDepth);
  if (policy.timezone !== null) params['timezone'] = policy.timezone;
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
