import type { Computer } from '../../core/domain.js';
import { effectivePolicy } from './computer-policy.js';
import { FieldValidationError } from './http.js';

/** The configured guacd's RDP parameter names (gateway/rdp/guacd-capabilities.ts, cached probe). */
export interface GuacdRdpArgsSource {
  readonly address: { host: string; port: number };
  rdpArgs(): Promise<{ names: readonly string[] }>;
}

/**
 * A pinned RDP certificate is honoured only by a guacd that has
 * `cert-fingerprints` (1.6.0+); with an older one every session to the
 * computer would be refused. So a save that newly pins (or turns RDP on for
 * a pinned computer) asks guacd first:
 * - reachable and lacking the parameter → refused (400 JIT_ERR_VALIDATION, field policy.rdpCertFingerprint);
 * - unreachable → accepted with a warning in the response (`warnings`): guacd
 *   may simply be down or not deployed yet, and the tunnel checks again
 *   before provisioning each session.
 * Returns the warnings.
 */
type PinningView = Pick<Computer, 'name' | 'protocols' | 'policy'>;

export async function checkCertPinning(guacd: GuacdRdpArgsSource | undefined, next: PinningView, before: PinningView | null): Promise<string[]> {
  if (!guacd || !next.protocols.includes('rdp')) return [];
  const fp = effectivePolicy(next.policy).rdpCertFingerprint;
  if (!fp) return [];
  if (before && before.protocols.includes('rdp') && effectivePolicy(before.policy).rdpCertFingerprint === fp) return [];
  const where = `${guacd.address.host}:${guacd.address.port}`;
  let names: readonly string[];
  try {
    names = (await guacd.rdpArgs()).names;
  } catch {
    return [`guacd at ${where} could not be asked whether it supports certificate pinning (cert-fingerprints, guacd 1.6.0 or later); sessions to ${next.name} will be refused if it does not`];
  }
  if (!names.includes('cert-fingerprints')) {
    throw new FieldValidationError({
      'policy.rdpCertFingerprint': `guacd at ${where} does not support certificate pinning (cert-fingerprints needs guacd 1.6.0 or later): upgrade guacd, or leave the fingerprint empty`,
    });
  }
  return [];
}
