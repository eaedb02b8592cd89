import { describe, expect, it } from 'vitest';
import { RdpErrors } from './errors.js';
import { GUAC_STATUS_NAMES, guacdFailure, parseGuacStatus, statusLabel } from './guacd-status.js';

describe('guacd status in words', () => {
  it('labels statuses as the protocol reference names them and parses the decimal wire form', () => {
    expect(statusLabel(0x0207)).toBe('0x0207 UPSTREAM_NOT_FOUND');
    expect(statusLabel(0x031d)).toBe('0x031D CLIENT_TOO_MANY');
    expect(statusLabel(0x0999)).toBe('0x0999 UNKNOWN');
    expect(parseGuacStatus('519')).toBe(0x0207);
    expect(parseGuacStatus('769')).toBe(0x0301);
    expect(parseGuacStatus('')).toBeNull();
    expect(parseGuacStatus('0x207')).toBeNull();
    expect(parseGuacStatus(undefined)).toBeNull();
  });

  it('refused credentials (CLIENT_UNAUTHORIZED, CLIENT_FORBIDDEN) are a login refusal; the NLA hint only for NLA computers', () => {
    for (const status of [0x0301, 0x0303]) {
      const nla = guacdFailure({ computer: 'w1', security: 'nla', status, message: 'Authentication failure.' });
      expect(nla.code).toBe(RdpErrors.JIT_ERR_RDP_LOGIN_REFUSED.code);
      expect(nla.message).toContain("w1 refused the session's just-in-time account");
      expect(nla.message).toContain('set RDP security to TLS');
      const tls = guacdFailure({ computer: 'w1', security: 'tls', status });
      expect(tls.message).not.toContain('NLA');
    }
  });

  it('every other status gives words and a hint, never the raw template, and guacd text on one bounded line', () => {
    for (const key of Object.keys(GUAC_STATUS_NAMES)) {
      const status = Number(key);
      if (status === 0) continue;
      for (const security of ['nla', 'tls', 'any'] as const) {
        const e = guacdFailure({ computer: 'w1', security, status, message: 'x\n'.repeat(200) });
        expect(e.message).not.toMatch(/\{\w+\}/);
        expect(e.message).not.toContain('\n');
        expect(e.message.length).toBeLessThan(500);
        expect(e.details.status).toBe(status);
      }
    }
    // Unreachable / negotiation on an NLA computer: the hint the issue asks for.
    expect(guacdFailure({ computer: 'w1', security: 'nla', status: 0x0207 }).message).toContain('This computer may not support NLA: ask an admin to set RDP security to TLS.');
    expect(guacdFailure({ computer: 'w1', security: 'any', status: 0x0207 }).message).not.toContain('NLA');
    expect(guacdFailure({ computer: 'w1', security: 'nla', status: null }).message).toContain('closed before anything was shown');
  });
});
