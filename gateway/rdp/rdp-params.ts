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

export function buildRdpParams(input: RdpParamsInput): RdpParams {
  const policy = parseRdpPolicy(input.computer.policy);
  const c = input.credentials;
  const params: Record<string, string> = {
    hostname: input.computer.address,
    port: String(input.computer.rdpPort),
    username: c.username,
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
  const required = new Set(['hostname', 'port', 'username', 'password', 'security', 'ignore-cert', 'disable-copy', 'disable-paste', 'enable-drive', 'enable-printing']);
  if (c.domain) {
    params['domain'] = c.domain;
    required.add('domain');
  }
  if (policy.certFingerprint) {
    params['cert-fingerprints'] = policy.certFingerprint;
    required.add('cert-fingerprints');
  }
  if (policy.drive) {
    params['drive-path'] = `${input.driveRoot.replace(/\/+$/, '')}/${input.sessionId}`;
    params['create-drive-path'] = 'true';
    required.add('drive-path');
  }
  if (input.recording) {
    params['recording-path'] = input.recording.path;
    params['recording-name'] = input.recording.name;
    params['create-recording-path'] = 'true';
    required.add('recording-path');
    required.add('recording-name');
  }
  return { params, required, policy };
}
