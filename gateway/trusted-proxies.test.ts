import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/load.js';
import { isJitgateError } from '../core/errors.js';
import { proxyTrust } from './trusted-proxies.js';

function configProblem(trustProxy: string): string {
  try {
    loadConfig({ env: { JITGATE_CONFIG: '/dev/null', JITGATE_SERVER__TRUST_PROXY: trustProxy } });
  } catch (err) {
    if (isJitgateError(err)) return err.message;
    throw err;
  }
  return '';
}

describe('server.trustProxy', () => {
  it('refuses true with a message that says to list the proxies, and bad entries with their index', () => {
    expect(configProblem('true')).toMatch(/server\.trustProxy: true would trust X-Forwarded-For from any client: list the addresses or CIDRs of your reverse proxies/);
    const bad = configProblem('[nope, "10.0.0.0/33", "::/0", "fd00::/129"]');
    expect(bad).toContain('server.trustProxy[0]: nope: not an IPv4/IPv6 address or CIDR block');
    expect(bad).toContain('server.trustProxy[1]: 10.0.0.0/33: the prefix length must be 0..32');
    expect(bad).toContain('server.trustProxy[2]: ::/0: trusts every address');
    expect(bad).toContain('server.trustProxy[3]: fd00::/129: the prefix length must be 0..128');
  });

  it('defaults to false and takes a list (or a comma-separated environment value)', () => {
    expect(loadConfig({ env: { JITGATE_CONFIG: '/dev/null' } }).server.trustProxy).toBe(false);
    expect(loadConfig({ env: { JITGATE_CONFIG: '/dev/null', JITGATE_SERVER__TRUST_PROXY: '10.0.0.5, fd00::/8' } }).server.trustProxy).toEqual(['10.0.0.5', 'fd00::/8']);
  });

  it('matches IPv4 and IPv6 addresses and blocks, IPv4-mapped peers included', () => {
    const t = proxyTrust(['10.0.0.5', '172.16.0.0/12', 'fd00::/8', '::1']);
    expect(['10.0.0.5', '::ffff:10.0.0.5', '172.31.255.1', 'fd12::1', '::1'].map(t)).toEqual([true, true, true, true, true]);
    expect(['10.0.0.6', '172.32.0.1', 'fe80::1', '127.0.0.1', 'junk', undefined].map(t)).toEqual([false, false, false, false, false, false]);
    expect(proxyTrust(false)('10.0.0.5')).toBe(false);
  });
});
