import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Client, InvalidCredentialsError } from 'ldapts';
import { JitgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logging.js';
import type { LdapProviderConfig } from '../../config/schema.js';
import { escapeFilterValue } from '../../provisioner/stores/ldap-escape.js';
import { AuthErrors } from './errors.js';

/** What the directory says about a person who proved their password by binding. */
export interface DirectoryPerson {
  /** objectGUID (hex): stable across renames and moves. */
  subject: string;
  dn: string;
  login: string;
  displayName: string;
  email: string | null;
  /** DNs of every group the person is in, nested groups included. */
  groups: string[];
}

/** A typed login that can only name one account: no filter metacharacters survive escaping, and none are expected. */
const SAM_LOGIN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$/;
const UPN_LOGIN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@[A-Za-z0-9.-]{1,253}$/;

/** AD's LDAP_MATCHING_RULE_IN_CHAIN: transitive group membership in one search ([MS-ADTS] 3.1.1.3.4.4.3). */
const IN_CHAIN = '1.2.840.113556.1.4.1941';

const first = (v: unknown): string => (Array.isArray(v) ? String(v[0] ?? '') : typeof v === 'string' ? v : '');

/**
 * Sign-in against an LDAP/AD directory: a service bind finds the person by
 * sAMAccountName or userPrincipalName (escaped filter, exactly one match),
 * then a second connection binds as the found DN with the typed password.
 * The directory decides the password (and its own lockout, expiry, disabled
 * flag); jitgate reads the groups with the service bind.
 */
export class LdapSignIn {
  readonly #log: Logger;
  constructor(
    readonly cfg: LdapProviderConfig,
    log: Logger,
  ) {
    this.#log = log.child({ component: 'ldap-sign-in', provider: cfg.name });
  }

  #tls(): ConnectionOptions {
    const host = new URL(this.cfg.url).hostname.replace(/^\[|\]$/g, '');
    return { ca: [this.cfg.caCert.reveal()], host, ...(isIP(host) === 0 ? { servername: host } : {}), minVersion: 'TLSv1.2' };
  }

  async #connect(dn: string, password: string): Promise<Client> {
    const ldaps = new URL(this.cfg.url).protocol === 'ldaps:';
    const client = new Client({ url: this.cfg.url, timeout: this.cfg.timeoutMs, connectTimeout: this.cfg.timeoutMs, ...(ldaps ? { tlsOptions: this.#tls() } : {}) });
    try {
      if (this.cfg.startTls) await client.startTLS(this.#tls());
      await client.bind(dn, password);
      return client;
    } catch (err) {
      await client.unbind().catch(() => undefined);
      throw err;
    }
  }

  /** Throws JIT_ERR_AUTH_INVALID_CREDENTIALS (unknown login, wrong password, empty password) or JIT_ERR_AUTH_SSO_UNAVAILABLE. */
  async authenticate(login: string, password: string): Promise<DirectoryPerson> {
    const invalid = () => new JitgateError(AuthErrors.JIT_ERR_AUTH_INVALID_CREDENTIALS);
    // An empty password makes a simple bind "unauthenticated" and succeed (RFC 4513 section 5.1.2): refuse before any bind.
    if (password.length === 0 || password.length > 1024) throw invalid();
    const typed = login.trim();
    const pattern = this.cfg.loginAttribute === 'sAMAccountName' ? SAM_LOGIN : UPN_LOGIN;
    if (!pattern.test(typed)) throw invalid();
    let service: Client;
    try {
      service = await this.#connect(this.cfg.bindDn, this.cfg.bindPassword.reveal());
    } catch (err) {
      this.#log.error({ err: { name: (err as Error).name, code: (err as { code?: unknown }).code } }, 'directory service bind failed');
      throw new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_UNAVAILABLE, { provider: this.cfg.name });
    }
    try {
      const filter = `(&(objectCategory=person)(objectClass=user)(${this.cfg.loginAttribute}=${escapeFilterValue(typed)}))`;
      const found = await service.search(this.cfg.baseDn, {
        scope: 'sub',
        filter,
        sizeLimit: 2,
        attributes: ['objectGUID', 'sAMAccountName', 'displayName', 'mail'],
        explicitBufferAttributes: ['objectGUID'],
      });
      // Zero or several matches: nobody to bind as (answered like a wrong password).
      if (found.searchEntries.length !== 1) throw invalid();
      const e = found.searchEntries[0]!;
      const guid = e['objectGUID'];
      const subject = Buffer.isBuffer(guid) ? guid.toString('hex') : Array.isArray(guid) && Buffer.isBuffer(guid[0]) ? guid[0].toString('hex') : '';
      if (!subject) throw invalid();
      try {
        const asPerson = await this.#connect(e.dn, password);
        await asPerson.unbind().catch(() => undefined);
      } catch (err) {
        if (err instanceof InvalidCredentialsError) throw invalid();
        throw err;
      }
      const groups = await service.search(this.cfg.baseDn, {
        scope: 'sub',
        filter: `(&(objectClass=group)(member:${IN_CHAIN}:=${escapeFilterValue(e.dn)}))`,
        attributes: ['dn'],
      });
      return {
        subject,
        dn: e.dn,
        login: first(e['sAMAccountName']) || typed,
        displayName: first(e['displayName']),
        email: first(e['mail']) || null,
        groups: groups.searchEntries.map((g) => g.dn),
      };
    } catch (err) {
      if (err instanceof JitgateError) throw err;
      this.#log.error({ err: { name: (err as Error).name, code: (err as { code?: unknown }).code } }, 'directory sign-in failed');
      throw new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_UNAVAILABLE, { provider: this.cfg.name });
    } finally {
      await service.unbind().catch(() => undefined);
    }
  }
}
