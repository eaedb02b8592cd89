import type { AccountStoreConfig } from '../config/schema.js';
import type { Logger } from '../core/logging.js';
import type { AccountStore } from '../provisioner/account-store.js';

/**
 * Build an account store adapter from its configuration (entry-point wiring). Each adapter
 * (ldapts, ssh2, the WS-Man client) is imported only when a store of its type is configured.
 */
export async function buildStore(sc: AccountStoreConfig, log: Logger): Promise<AccountStore> {
  const logger = log.child({ component: 'store', store: sc.name });
  switch (sc.type) {
    case 'winrm': {
      const { WinRmStore } = await import('../provisioner/stores/winrm.store.js');
      return new WinRmStore({
        endpoint: sc.endpoint, auth: sc.auth, username: sc.username, password: sc.password.reveal(), domain: sc.domain,
        caCert: sc.caCert?.reveal(), groups: sc.groups, logger, timeoutMs: sc.timeoutMs, allowInsecureTransport: sc.allowInsecureTransport,
        protectedGroups: sc.elevation.protectedGroups,
      });
    }
    case 'ldap': {
      const { LdapAccountStore } = await import('../provisioner/stores/ldap.store.js');
      return new LdapAccountStore({
        url: sc.url, startTls: sc.startTls, caCert: sc.caCert.reveal(), bindDn: sc.bindDn, bindPassword: sc.bindPassword.reveal(),
        baseDn: sc.baseDn, accountsContainer: sc.accountsContainer, groups: sc.groups, upnSuffix: sc.upnSuffix, logger, timeoutMs: sc.timeoutMs,
        domain: sc.domain, allowInsecureTransport: sc.allowInsecureTransport, protectedGroups: sc.elevation.protectedGroups,
      });
    }
    case 'ssh': {
      const { SshAccountStore } = await import('../provisioner/stores/ssh.store.js');
      return new SshAccountStore({
        host: sc.host, port: sc.port, username: sc.username, privateKey: sc.privateKey.reveal(), hostKeySha256: sc.hostKeySha256,
        markerGroup: sc.markerGroup, groups: sc.groups, logger, timeoutMs: sc.timeoutMs, passwordHash: sc.passwordHash,
        winbindDomain: sc.winbindDomain, protectedGroups: sc.elevation.protectedGroups,
      });
    }
  }
}
