import { describe, expect, it } from 'vitest';
import { computerPolicySchema, effectivePolicy, isIanaTimeZone } from './computer-policy.js';

describe('computer policy', () => {
  it('defaults to the most restrictive session', () => {
    expect(computerPolicySchema.parse({})).toEqual({
      recordInput: false, sftp: false, portForwarding: false, clipboard: 'off', clipboardMaxBytes: 262_144, drive: 'off', fileMaxBytes: 104_857_600,
      printing: false, rdpSecurity: 'nla', rdpIgnoreCert: false, rdpResizeMethod: 'display-update',
    });
  });

  it('accepts a SHA-256 certificate fingerprint with or without colons, rejects anything else', () => {
    const hex = 'ab'.repeat(32);
    const colons = hex.match(/../g)!.join(':').toUpperCase();
    expect(computerPolicySchema.parse({ rdpCertFingerprint: hex }).rdpCertFingerprint).toBe(hex);
    expect(computerPolicySchema.parse({ rdpCertFingerprint: colons }).rdpCertFingerprint).toBe(colons);
    expect(computerPolicySchema.safeParse({ rdpCertFingerprint: 'ab'.repeat(20) }).success).toBe(false);
    expect(computerPolicySchema.safeParse({ unknown: true }).success).toBe(false);
  });

  it('reads the older on/off clipboard and drive as both directions / off', () => {
    expect(computerPolicySchema.parse({ clipboard: true, drive: true })).toMatchObject({ clipboard: 'both', drive: 'both' });
    expect(computerPolicySchema.parse({ clipboard: false, drive: false })).toMatchObject({ clipboard: 'off', drive: 'off' });
    expect(computerPolicySchema.parse({ clipboard: 'remote-to-local', drive: 'download' })).toMatchObject({ clipboard: 'remote-to-local', drive: 'download' });
  });

  it('refuses bad directions, limits, security, resize, colour depth and time zone in words, per field', () => {
    const r = computerPolicySchema.safeParse({
      clipboard: 'sideways', drive: 'up', clipboardMaxBytes: 0, fileMaxBytes: 1.5, rdpSecurity: 'kerberos', rdpResizeMethod: 'stretch', rdpColorDepth: 12, rdpTimezone: 'Mars/Olympus_Mons',
    });
    expect(r.success).toBe(false);
    expect(Object.fromEntries(r.error!.issues.map((i) => [i.path.join('.'), i.message]))).toEqual({
      clipboard: 'off, remote-to-local, local-to-remote or both',
      drive: 'off, upload, download or both',
      clipboardMaxBytes: 'at least 1 byte',
      fileMaxBytes: 'a whole number of bytes',
      rdpSecurity: 'nla, tls, rdp or any',
      rdpResizeMethod: 'display-update, reconnect or none',
      rdpColorDepth: '8, 16, 24 or 32',
      rdpTimezone: 'an IANA time zone name such as Europe/Berlin or UTC',
    });
    expect(computerPolicySchema.parse({ rdpSecurity: 'rdp', rdpColorDepth: 32, rdpTimezone: 'America/Argentina/Buenos_Aires' })).toMatchObject({ rdpSecurity: 'rdp', rdpColorDepth: 32 });
  });

  it('time zones: IANA names only, nothing that could carry other text', () => {
    for (const ok of ['UTC', 'Europe/Berlin', 'America/Port-au-Prince', 'Etc/GMT+5']) expect(isIanaTimeZone(ok)).toBe(true);
    for (const bad of ['', 'Europe/Nowhere', 'Europe/Berlin;x', '../etc/passwd', 'Europe/Berlin\n', ' UTC']) expect(isIanaTimeZone(bad)).toBe(false);
  });

  it('a stored policy that no longer validates keeps its valid fields and falls back to defaults for the rest', () => {
    expect(effectivePolicy({ sftp: true, clipboard: 'yes', rdpSecurity: 'kerberos', rdpTimezone: 'Nowhere/Land', extra: 1 })).toMatchObject({ sftp: true, clipboard: 'off', rdpSecurity: 'nla' });
    expect(effectivePolicy({ sftp: true, rdpTimezone: 'Nowhere/Land', extra: 1 }).rdpTimezone).toBeUndefined();
    expect(effectivePolicy(null)).toEqual(computerPolicySchema.parse({}));
    expect(effectivePolicy('garbage')).toEqual(computerPolicySchema.parse({}));
  });
});
