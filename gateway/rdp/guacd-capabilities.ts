import { JitgateError } from '../../core/errors.js';
import { RdpErrors } from './errors.js';
import { probeRdpArgs, type GuacdAddress, type GuacdRdpArgs } from './guacd-client.js';
import { guacdParamsNeeded } from './rdp-params.js';

/**
 * What the configured guacd can do for RDP, asked before anything is
 * provisioned (a pinned certificate needs `cert-fingerprints`, guacd 1.6.0+;
 * refusing after the account exists wastes an account and a recording slot).
 *
 * The answer is cached for `ttlMs` (default 30 s) so a burst of connects
 * costs one probe; concurrent callers share the probe in flight; a failed
 * probe is not cached. A stale answer cannot weaken a session: the
 * handshake itself still refuses a parameter guacd does not list
 * (guacd-client.ts `openGuacd`), only later.
 */
export interface GuacdCapabilitiesOptions {
  ttlMs?: number;
  timeoutMs?: number;
  now?: () => number;
  /** The probe (tests count calls); default: `probeRdpArgs`. */
  probe?: (addr: GuacdAddress, timeoutMs: number) => Promise<GuacdRdpArgs>;
}

export class GuacdCapabilities {
  readonly address: GuacdAddress;
  readonly #ttlMs: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #probe: (addr: GuacdAddress, timeoutMs: number) => Promise<GuacdRdpArgs>;
  #cached: { at: number; value: GuacdRdpArgs } | null = null;
  #inFlight: Promise<GuacdRdpArgs> | null = null;

  constructor(address: GuacdAddress, opts: GuacdCapabilitiesOptions = {}) {
    this.address = address;
    this.#ttlMs = opts.ttlMs ?? 30_000;
    this.#timeoutMs = opts.timeoutMs ?? 3000;
    this.#now = opts.now ?? Date.now;
    this.#probe = opts.probe ?? probeRdpArgs;
  }

  /** guacd's RDP `args` (cached). Throws JIT_ERR_RDP_GUACD_UNREACHABLE (and the other guacd errors) when it cannot be asked. */
  async rdpArgs(): Promise<GuacdRdpArgs> {
    const c = this.#cached;
    if (c && this.#now() - c.at < this.#ttlMs) return c.value;
    this.#inFlight ??= this.#probe(this.address, this.#timeoutMs)
      .then((value) => {
        this.#cached = { at: this.#now(), value };
        return value;
      })
      .finally(() => {
        this.#inFlight = null;
      });
    return this.#inFlight;
  }

  /**
   * Refuse (JIT_ERR_RDP_GUACD_UNSUPPORTED, the words the handshake uses) when
   * guacd lacks a parameter in `needed`; guacd unreachable → its error.
   */
  async assertSupports(needed: Iterable<string>, computerName: string): Promise<void> {
    const missing = missingGuacdParams(needed, (await this.rdpArgs()).names);
    if (missing[0]) throw new JitgateError(RdpErrors.JIT_ERR_RDP_GUACD_UNSUPPORTED, { param: missing[0], computer: computerName });
  }
}

/** The names of `needed` that guacd's `args` list lacks, in `needed`'s order. */
export function missingGuacdParams(needed: Iterable<string>, offered: readonly string[]): string[] {
  const have = new Set(offered);
  return [...needed].filter((n) => !have.has(n));
}

/** Per RDP computer, the guacd parameters its policy needs that guacd does not offer (`jitgate check`); computers lacking nothing are left out. */
export function policyGaps(computers: readonly { name: string; policy: unknown }[], offered: readonly string[]): { computer: string; missing: string[] }[] {
  return computers
    .map((c) => ({ computer: c.name, missing: missingGuacdParams(guacdParamsNeeded(c.policy), offered) }))
    .filter((g) => g.missing.length > 0);
}
