import type { AccountStoreConfig } from '../config/schema.js';
import type { Logger } from '../core/logging.js';
import type { AccountStore } from '../provisioner/account-store.js';
import { LdapAccountStore } from '../provisioner/stores/ldap.store.js';
import { SshAccountStore } from '../provisioner/stores/ssh.store.js';
import { WinRmStore } from '../provisioner/stores/winrm.store.js';

/** Build an account store adapter from its configuration (entry-point wiring). */
export async function buildStore(sc: AccountStoreConfig, log: Logger): Promise<AccountStore> {
  const logger = log.child({ component: 'store', store: sc.name });
  switch (sc.type) {
    case 'winrm':
      return new WinRmStore({
        endpoint: sc.endpoint, auth: sc.auth, username: sc.username, password: sc.password.reveal(), domain: sc.domain,
        caCert: sc.caCert?.reveal(), groups: sc.groups, logger, timeoutMs: sc.timeoutMs, allowInsecureTransport: sc.allowInsecureTransport,
      });
    case 'ldap':
      return new LdapAccountStore({
        url: sc.url, startTls: sc.startTls, caCert: sc.caCert.reveal(), bindDn: sc.bindDn, bindPassword: sc.bindPassword.reveal(),
        baseDn: sc.baseDn, accountsContainer: sc.accountsContainer, groups: sc.groups, upnSuffix: sc.upnSuffix, logger, timeoutMs: sc.timeoutMs,
        domain: sc.domain, allowInsecureTransport: sc.allowInsecureTransport,
      });
    case 'ssh':
      return new SshAccountStore({
        host: sc.host, port: sc.port, username: sc.username, privateKey: sc.privateKey.reveal(), hostKeySha256: sc.hostKeySha256,
        markerGroup: sc.markerGroup, groups: sc.groups, logger, timeoutMs: sc.timeoutMs, passwordHash: sc.passwordHash,
        winbindDomain: sc.winbindDomain,
      });
  }
}
