import { useState } from 'preact/hooks';
import { del, get, put, type PersonAccount, type PersonRow } from '../api.js';
import { ErrorBox, TextInput, useLoad } from '../ui.js';

/**
 * A person's existing accounts, one row per account store their computers
 * may use: what a computer in elevation mode raises for them. Empty means
 * the store's naming rule applies (shown as the placeholder). Saving asks
 * the store: a missing, disabled or protected account is refused in words.
 */
export function PersonAccounts({ person, onClose }: { person: PersonRow; onClose: () => void }) {
  const rows = useLoad(async () => get<PersonAccount[]>(`/people/${person.id}/accounts`), [person.id]);
  const [draft, setDraft] = useState<Record<string, string>>({});
  const [err, setErr] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async (fn: () => Promise<unknown>, done: string) => {
    setErr(null);
    setNotice(null);
    setBusy(true);
    try {
      await fn();
      setNotice(done);
      rows.reload();
    } catch (x) {
      setErr(x);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="editor" aria-labelledby="pa-title" data-testid="person-accounts">
      <h2 id="pa-title">Existing accounts of {person.login}</h2>
      <p class="hint">
        On computers that elevate existing accounts, this is the account that joins the admin groups for the session. Leave a store empty to use its naming rule
        (shown greyed). The person signs in to it with their own password; jitgate never learns it.
      </p>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorBox error={rows.error ?? err} />
      {rows.data && rows.data.length === 0 && <p>No account store serves this person's organization.</p>}
      {rows.data && rows.data.length > 0 && (
        <table class="list">
          <thead>
            <tr>
              <th scope="col">Account store</th>
              <th scope="col">Account</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.data.map((r) => {
              const id = `pa-${r.store}`;
              const value = draft[r.store] ?? r.accountName ?? '';
              return (
                <tr key={r.store} data-store={r.store}>
                  <td data-label="Account store">
                    <label for={id}>
                      {r.store} ({r.type})
                    </label>
                  </td>
                  <td data-label="Account">
                    <TextInput id={id} value={value} placeholder={r.defaultAccountName} onValue={(v) => setDraft({ ...draft, [r.store]: v })} autoComplete="off" />
                    <small class="hint">{r.accountName ? 'set by an admin' : `naming rule: ${r.defaultAccountName}`}</small>
                  </td>
                  <td class="row-actions">
                    <button
                      type="button"
                      disabled={busy || value.trim() === '' || value.trim() === r.accountName}
                      onClick={() => void run(() => put(`/people/${person.id}/accounts/${encodeURIComponent(r.store)}`, { accountName: value.trim() }), `${person.login} elevates as ${value.trim()} on ${r.store}.`)}
                    >
                      Save
                    </button>
                    {r.accountName && (
                      <button
                        type="button"
                        disabled={busy}
                        onClick={() =>
                          void run(async () => {
                            await del(`/people/${person.id}/accounts/${encodeURIComponent(r.store)}`);
                            setDraft((d) => ({ ...d, [r.store]: '' }));
                          }, `${r.store}: the naming rule applies again (${r.defaultAccountName}).`)
                        }
                      >
                        Use the rule
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <div class="row">
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
    </section>
  );
}
