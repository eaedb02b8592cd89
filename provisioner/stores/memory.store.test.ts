import { describeAccountStoreContract } from '../account-store.contract.js';
import { MemoryAccountStore } from './memory.store.js';

const store = new MemoryAccountStore({ groups: ['JIT Admins', 'Helpdesk'] });
describeAccountStoreContract('in-memory', async () => {
  store.seedExisting('administrator', { protectedReason: 'the built-in Administrator' });
  const existing = (name: string) => store.accounts.get(name.toLowerCase())!;
  return {
    store,
    groups: ['JIT Admins', 'Helpdesk'],
    seedUnmanaged: async (name) => store.seedUnmanaged(name),
    removeUnmanaged: async (name) => void store.accounts.delete(name),
    canLogOn: async (name, pw) => store.canLogOn(name, pw),
    elevation: {
      builtInProtected: 'administrator',
      makeProtectedByGroup: async (name) => void (existing(name).protectedReason = 'a member of a protected group'),
      disableOutOfBand: async (name) => void (existing(name).enabled = false),
      addMemberOutOfBand: async (name, group) => void store.groups.get(group)!.add(name.toLowerCase()),
      memberOutOfBand: async (name, group) => store.memberOf(name, group),
    },
  };
});

const joining = new MemoryAccountStore({ groups: ['JIT Admins', 'Helpdesk'], groupsOnCreate: true });
describeAccountStoreContract('in-memory, joining groups on create', async () => ({
  store: joining,
  groups: ['JIT Admins', 'Helpdesk'],
  seedUnmanaged: async (name) => joining.seedUnmanaged(name),
  removeUnmanaged: async (name) => void joining.accounts.delete(name),
  canLogOn: async (name, pw) => joining.canLogOn(name, pw),
}));
