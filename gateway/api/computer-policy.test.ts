import { describe, expect, it } from 'vitest';
import { computerPolicySchema, effectivePolicy } from './computer-policy.js';

describe('computer policy', () => {
  it('defaults to the most restrictive session', () => {
    expect(computerPolicySchema.parse({})).toEqual({
      recordInput: false, sftp: false, portForwarding: false, clipboard: false, drive: false, printing: false, rdpSecurity: 'nla', rdpIgnoreCert: false,
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

  it('a stored policy that no longer validates keeps its valid fields and falls back to defaults for the rest', () => {
    expect(effectivePolicy({ sftp: true, clipboard: 'yes', rdpSecurity: 'rdp', extra: 1 })).toMatchObject({ sftp: true, clipboard: false, rdpSecurity: 'nla' });
    expect(effectivePolicy(null)).toEqual(computerPolicySchema.parse({}));
    expect(effectivePolicy('garbage')).toEqual(computerPolicySchema.parse({}));
  });
});
