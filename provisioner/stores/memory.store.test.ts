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

const joining = new MemoryAccountStore({ groups: ['JIT Admins', 'Helpdesk'], groupsOnCreate: true });
describeAccountStoreContract('in-memory, joining groups on create', async () => ({
  store: joining,
  groups: ['JIT Admins', 'Helpdesk'],
  seedUnmanaged: async (name) => joining.seedUnmanaged(name),
  removeUnmanaged: async (name) => void joining.accounts.delete(name),
  canLogOn: async (name, pw) => joining.canLogOn(name, pw),
}));
