import { useState } from 'preact/hooks';
import { get, listOf, post, type AccountStore } from '../api.js';
import { ErrorBox, Page, useLoad } from '../ui.js';
import { can, useSession } from '../session.js';

/** Configured account stores (from the config file; never secrets) with "test connection". */
export function StoresPage() {
  // Testing a store is for global admins (gateway canTestStores); others are not offered a button that fails.
  const mayTest = can(useSession().me.person, 'globalAdmin');
  const { data, error } = useLoad(async () => listOf<AccountStore>(await get('/account-stores'), 'stores'));
  const [results, setResults] = useState<Record<string, { ok: boolean; error?: string } | 'testing'>>({});
  const test = async (name: string) => {
    setResults((r) => ({ ...r, [name]: 'testing' }));
    try {
      const r = await post<{ ok: boolean; error?: string }>(`/account-stores/${encodeURIComponent(name)}/test`);
      setResults((x) => ({ ...x, [name]: r }));
    } catch (e) {
      setResults((x) => ({ ...x, [name]: { ok: false, error: e instanceof Error ? e.message : String(e) } }));
    }
  };
  return (
    <Page title="Account stores">
      <p class="muted">Account stores are configured in the jitgate configuration file (accountStores). Test that the gateway can reach each one.</p>
      <ErrorBox error={error} />
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Type</th>
            <th scope="col">Where</th>
            <th scope="col">Connection</th>
          </tr>
        </thead>
        <tbody>
          {(data ?? []).map((s) => {
            const r = results[s.name];
            return (
              <tr key={s.name}>
                <td data-label="Name">
                  <strong>{s.name}</strong>
                </td>
                <td data-label="Type">{s.type === 'ldap' ? 'Active Directory (LDAP)' : s.type === 'ssh' ? 'Linux (SSH)' : 'Windows (WinRM)'}</td>
                <td data-label="Where">{s.url ?? ''}</td>
                <td data-label="Connection" aria-live="polite">
                  {mayTest ? (
                    <button type="button" onClick={() => void test(s.name)} disabled={r === 'testing'}>
                      Test connection
                    </button>
                  ) : (
                    <span class="muted">tested by global admins</span>
                  )}{' '}
                  {r === 'testing' && <span>testing…</span>}
                  {r && r !== 'testing' && (r.ok ? <span class="badge ok">reachable</span> : <span class="badge bad">{r.error ?? 'failed'}</span>)}
                </td>
              </tr>
            );
          })}
          {data?.length === 0 && (
            <tr>
              <td colSpan={4} class="muted">
                No account stores are configured.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Page>
  );
}
