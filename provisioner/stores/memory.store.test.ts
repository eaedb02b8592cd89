import { describeAccountStoreContract } from '../account-store.contract.js';
import { MemoryAccountStore } from './memory.store.js';

const store = new MemoryAccountStore({ groups: ['JIT Admins', 'Helpdesk'] });
describeAccountStoreContract('in-memory', async () => ({
  store,
  groups: ['JIT Admins', 'Helpdesk'],
  seedUnmanaged: async (name) => store.seedUnmanaged(name),
  removeUnmanaged: async (name) => void store.accounts.delete(name),
  canLogOn: async (name, pw) => store.canLogOn(name, pw),
}));
