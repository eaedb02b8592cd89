import type { AccountStoreConfig } from './config/schema.js';
import type { Logger } from './core/logging.js';
import type { AccountStore } from './provisioner/account-store.js';
import { WinRmStore } from './provisioner/stores/winrm.store.js';

/** Build an account store adapter from its configuration (entry-point wiring). */
export async function buildStore(sc: AccountStoreConfig, log: Logger): Promise<AccountStore> {
  const logger = log.child({ component: 'store', store: sc.name });
  switch (sc.type) {
    case 'winrm':
      return new WinRmStore({
        endpoint: sc.endpoint, auth: sc.auth, username: sc.username, password: sc.password.reveal(), domain: sc.domain,
        caCert: sc.caCert?.reveal(), groups: sc.groups, logger, timeoutMs: sc.timeoutMs,
      });
    default:
      throw new Error(`account store ${sc.name}: type ${sc.type} is not available in this build yet`);
  }
}
