import { describe, expect, it } from 'vitest';
import { JitgateError } from '../../core/errors.js';
import { RdpErrors } from './errors.js';
import { GuacdCapabilities, missingGuacdParams } from './guacd-capabilities.js';
import type { GuacdRdpArgs } from './guacd-client.js';
import { guacdParamsNeeded } from './rdp-params.js';

const ADDR = { host: 'guacd.test', port: 4822 };
const V16: GuacdRdpArgs = { version: 'VERSION_1_5_0', names: ['hostname', 'port', 'username', 'password', 'security', 'ignore-cert', 'cert-fingerprints'] };
const V15: GuacdRdpArgs = { version: 'VERSION_1_5_0', names: V16.names.filter((n) => n !== 'cert-fingerprints') };

function counting(answers: (GuacdRdpArgs | Error)[]) {
  const calls: number[] = [];
  let now = 0;
  const caps = new GuacdCapabilities(ADDR, {
    ttlMs: 1000,
    now: () => now,
    probe: async () => {
      calls.push(now);
      const a = answers[Math.min(calls.length - 1, answers.length - 1)] as GuacdRdpArgs | Error;
      if (a instanceof Error) throw a;
      return a;
    },
  });
  return { caps, calls, advance: (ms: number) => void (now += ms) };
}

describe('GuacdCapabilities', () => {
  it('probes once per TTL, shares a probe in flight, and asks again after the TTL (guacd upgraded)', async () => {
    const { caps, calls, advance } = counting([V15, V16]);
    const [a, b] = await Promise.all([caps.rdpArgs(), caps.rdpArgs()]);
    expect(a).toBe(V15);
    expect(b).toBe(V15);
    advance(999);
    expect(await caps.rdpArgs()).toBe(V15);
    expect(calls).toHaveLength(1);
    advance(1);
    expect(await caps.rdpArgs()).toBe(V16);
    expect(calls).toHaveLength(2);
  });

  it('does not cache a failed probe', async () => {
    const down = new JitgateError(RdpErrors.JIT_ERR_RDP_GUACD_UNREACHABLE, { address: 'guacd.test:4822', reason: 'ECONNREFUSED' });
    const { caps, calls } = counting([down, V16]);
    await expect(caps.rdpArgs()).rejects.toMatchObject({ code: 'JIT_ERR_RDP_GUACD_UNREACHABLE' });
    expect(await caps.rdpArgs()).toBe(V16);
    expect(calls).toHaveLength(2);
  });

  it('assertSupports refuses with the handshake words when a needed parameter is missing', async () => {
    const { caps } = counting([V15]);
    await expect(caps.assertSupports(['hostname', 'cert-fingerprints'], 'win01')).rejects.toMatchObject({
      code: 'JIT_ERR_RDP_GUACD_UNSUPPORTED',
      message: 'guacd does not support the parameter cert-fingerprints that the policy of win01 needs; refusing to connect',
    });
    await expect(caps.assertSupports(['hostname', 'security'], 'win01')).resolves.toBeUndefined();
  });
});

describe('guacdParamsNeeded', () => {
  const FP = 'ab'.repeat(32);
  it('needs cert-fingerprints only for a pinned certificate, drive-path only for drives, recording names when recorded', () => {
    expect(missingGuacdParams(guacdParamsNeeded({}), [...V15.names, 'disable-copy', 'disable-paste', 'enable-drive', 'enable-printing', 'recording-path', 'recording-name'])).toEqual([]);
    expect(guacdParamsNeeded({ rdpCertFingerprint: FP }).has('cert-fingerprints')).toBe(true);
    expect(guacdParamsNeeded({ rdpIgnoreCert: true }).has('cert-fingerprints')).toBe(false);
    expect(guacdParamsNeeded({ drive: true }).has('drive-path')).toBe(true);
    expect(guacdParamsNeeded({}, { recording: false }).has('recording-path')).toBe(false);
    // A stored fingerprint that no longer validates falls back to "not pinned", as the session itself does.
    expect(guacdParamsNeeded({ rdpCertFingerprint: 'nonsense' }).has('cert-fingerprints')).toBe(false);
  });
});
