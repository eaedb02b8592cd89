import { useState } from 'preact/hooks';
import { get, listOf, patch, post, type Organization, type PersonRow, type Role } from '../api.js';
import { useSession } from '../session.js';
import { ErrorBox, Field, FormErrors, Page, ROLE_LABEL, TextInput, useForm, useLoad, type FormSpec } from '../ui.js';

interface NewPerson {
  login: string;
  displayName: string;
  email: string;
  role: Role;
  organizationId: string;
  password: string;
}

const PERSON_FIELDS: FormSpec = {
  login: { label: 'Login', id: 'p-login' },
  displayName: { label: 'Display name', id: 'p-name' },
  email: { label: 'Email', id: 'p-email' },
  role: { label: 'Role', id: 'p-role' },
  organizationId: { label: 'Organization', id: 'p-org' },
  password: { label: 'Initial password', id: 'p-password' },
};

export function PeoplePage() {
  const { me } = useSession();
  const isGlobal = me.person?.role === 'global_admin';
  const people = useLoad(async () => listOf<PersonRow>(await get('/people'), 'people'));
  const orgs = useLoad(async () => listOf<Organization>(await get('/organizations'), 'organizations'));
  const [form, setForm] = useState<NewPerson | null>(null);
  const editor = useForm(PERSON_FIELDS);
  const fields = editor.fields;
  const [err, setErr] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const roles: Role[] = isGlobal ? ['technician', 'auditor', 'org_admin', 'global_admin'] : ['technician', 'auditor', 'org_admin'];

  const create = editor.submit(async () => {
    if (!form) return;
    await post('/people', { ...form, login: form.login.trim(), email: form.email.trim() || undefined, organizationId: form.organizationId || null });
    setNotice(`${form.login} was created. They set up two-factor sign-in when they first sign in with the initial password.`);
    setForm(null);
    people.reload();
  });
  const act = async (fn: () => Promise<unknown>, done: string) => {
    setErr(null);
    setNotice(null);
    try {
      await fn();
      setNotice(done);
      people.reload();
    } catch (x) {
      setErr(x);
    }
  };
  const orgName = (id: string | null) => (id ? (orgs.data?.find((o) => o.id === id)?.name ?? id) : 'all organizations');

  return (
    <Page
      title="People"
      actions={
        <button
          type="button"
          class="primary"
          onClick={() => {
            editor.reset();
            setForm({ login: '', displayName: '', email: '', role: 'technician', organizationId: me.person?.organizationId ?? orgs.data?.[0]?.id ?? '', password: '' });
          }}
        >
          Add person
        </button>
      }
    >
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorBox error={people.error ?? err} />
      {form && (
        <form class="editor" onSubmit={(e) => void create(e)} ref={editor.ref} noValidate aria-labelledby="person-editor-title">
          <h2 id="person-editor-title">New person</h2>
          <FormErrors form={editor} />
          <div class="grid2">
            <Field id="p-login" label="Login" error={fields.login}>
              <TextInput id="p-login" value={form.login} onValue={(v) => setForm({ ...form, login: v })} error={fields.login} required autoComplete="off" />
            </Field>
            <Field id="p-name" label="Display name" error={fields.displayName}>
              <TextInput id="p-name" value={form.displayName} onValue={(v) => setForm({ ...form, displayName: v })} error={fields.displayName} required />
            </Field>
            <Field id="p-email" label="Email (optional)" error={fields.email}>
              <TextInput id="p-email" type="email" value={form.email} onValue={(v) => setForm({ ...form, email: v })} error={fields.email} />
            </Field>
            <Field id="p-role" label="Role" error={fields.role}>
              <select id="p-role" value={form.role} onChange={(e) => setForm({ ...form, role: (e.currentTarget as HTMLSelectElement).value as Role })}>
                {roles.map((r) => (
                  <option key={r} value={r}>
                    {ROLE_LABEL[r]}
                  </option>
                ))}
              </select>
            </Field>
            <Field id="p-org" label="Organization" error={fields.organizationId}>
              <select id="p-org" value={form.organizationId} disabled={!isGlobal} onChange={(e) => setForm({ ...form, organizationId: (e.currentTarget as HTMLSelectElement).value })}>
                {isGlobal && <option value="">none (all organizations)</option>}
                {(orgs.data ?? []).map((o) => (
                  <option key={o.id} value={o.id}>
                    {o.name}
                  </option>
                ))}
              </select>
            </Field>
            <Field id="p-password" label="Initial password" error={fields.password} hint="Give it to the person privately; they change it after signing in.">
              <TextInput id="p-password" type="password" value={form.password} onValue={(v) => setForm({ ...form, password: v })} error={fields.password} required autoComplete="new-password" />
            </Field>
          </div>
          <div class="row">
            <button type="submit" class="primary" disabled={editor.busy}>
              Create
            </button>
            <button type="button" onClick={() => setForm(null)}>
              Cancel
            </button>
          </div>
        </form>
      )}
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Login</th>
            <th scope="col">Name</th>
            <th scope="col">Role</th>
            <th scope="col">Organization</th>
            <th scope="col">Status</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {(people.data ?? []).map((p) => (
            <tr key={p.id} data-login={p.login}>
              <td data-label="Login">{p.login}</td>
              <td data-label="Name">{p.displayName}</td>
              <td data-label="Role">{ROLE_LABEL[p.role] ?? p.role}</td>
              <td data-label="Organization">{orgName(p.organizationId)}</td>
              <td data-label="Status">
                {p.disabled ? <span class="badge bad">disabled</span> : p.locked ? <span class="badge warn">locked</span> : <span class="badge ok">active</span>}{' '}
                {!p.totpEnabled && <span class="badge">no 2FA yet</span>}
              </td>
              <td class="row-actions">
                {p.id !== me.person?.id && (
                  <>
                    <button type="button" onClick={() => void act(() => post(`/people/${p.id}/reset-mfa`), `${p.login} enrolls two-factor sign-in again at next sign-in.`)}>
                      Reset MFA
                    </button>
                    <button
                      type="button"
                      class={p.disabled ? '' : 'danger'}
                      onClick={() => void act(() => patch(`/people/${p.id}`, { disabled: !p.disabled }), p.disabled ? `${p.login} is enabled.` : `${p.login} is disabled and signed out.`)}
                    >
                      {p.disabled ? 'Enable' : 'Disable'}
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Page>
  );
}
