import { useState } from 'preact/hooks';
import { del, get, listOf, patch, post, type Organization, type PersonRow, type Role } from '../api.js';
import { useSession } from '../session.js';
import { ErrorBox, Field, FormErrors, Page, ROLE_LABEL, TextInput, fmtTime, useForm, useLoad, type FormSpec } from '../ui.js';

interface Invitation {
  id: string;
  login: string;
  displayName: string;
  role: Role;
  organizationId: string | null;
  createdBy: string;
  expiresAt: string;
  state: 'open' | 'used' | 'expired' | 'revoked';
}

interface AccessOverview {
  blocked: null | 'disabled' | 'locked' | 'must-change-password';
  lockedUntil: string | null;
  computers: {
    id: string; name: string; organizationName: string; protocols: string[]; restricted: boolean;
    via: 'global-admin' | 'organization-admin' | 'organization' | 'grant' | 'team'; grantedAt: string | null;
    jit: { enabled?: boolean; mode?: string; accountType?: string; accountMode?: string; deleteOnCheckIn?: boolean; maxSessionMinutes?: number; adminGroups?: string[] };
  }[];
}

const VIA_LABEL: Record<AccessOverview['computers'][number]['via'], string> = {
  'global-admin': 'global administrator (every computer)',
  'organization-admin': 'organization administrator',
  organization: 'organization (unrestricted computer)',
  grant: 'grant (shared by name)',
  team: 'team (granted by label)',
};

function jitText(j: AccessOverview['computers'][number]['jit']): string {
  if (j.enabled === false) return 'no JIT account (existing accounts)';
  const parts = [j.mode === 'elevate' ? 'elevate own account' : `${j.accountMode ?? 'named'} ${j.accountType ?? 'domain'} account`];
  parts.push(j.deleteOnCheckIn === false ? 'kept after check-in' : 'deleted at check-in');
  if (j.maxSessionMinutes) parts.push(`max ${j.maxSessionMinutes} min`);
  if (j.adminGroups?.length) parts.push(`groups ${j.adminGroups.join(', ')}`);
  return parts.join(' · ');
}

/** A destructive action waits for a second, explicit click. */
interface Pending {
  text: string;
  confirm: string;
  run: () => Promise<unknown>;
  done: string;
}

function PersonEditor(props: { person: PersonRow; roles: Role[]; orgs: Organization[]; isGlobal: boolean; ask: (p: Pending) => void; onClose: () => void }) {
  const { person, roles, orgs, isGlobal, ask } = props;
  const [role, setRole] = useState<Role>(person.role);
  const [org, setOrg] = useState(person.organizationId ?? '');
  const [pw, setPw] = useState('');
  const access = useLoad(async () => get<AccessOverview>(`/people/${person.id}/access`), [person.id, person.role, person.organizationId, person.locked, person.disabled]);
  const changed = role !== person.role || (org || null) !== person.organizationId;
  return (
    <section class="editor" aria-labelledby="edit-person-title" data-testid="person-editor">
      <h2 id="edit-person-title">{person.login}</h2>
      {person.locked && (
        <p class="row">
          <span class="badge warn">locked until {fmtTime(person.lockedUntil)}</span>
          <button type="button" onClick={() => ask({ text: `Unlock ${person.login} now? They can sign in again at once.`, confirm: 'Unlock', run: () => patch(`/people/${person.id}`, { locked: false }), done: `${person.login} is unlocked.` })}>
            Unlock
          </button>
        </p>
      )}
      <div class="grid2">
        <Field id="e-role" label="Role">
          <select id="e-role" value={role} onChange={(e) => setRole((e.currentTarget as HTMLSelectElement).value as Role)}>
            {roles.map((r) => (
              <option key={r} value={r}>
                {ROLE_LABEL[r]}
              </option>
            ))}
          </select>
        </Field>
        <Field id="e-org" label="Organization">
          <select id="e-org" value={org} disabled={!isGlobal} onChange={(e) => setOrg((e.currentTarget as HTMLSelectElement).value)}>
            {isGlobal && <option value="">none (all organizations)</option>}
            {orgs.map((o) => (
              <option key={o.id} value={o.id}>
                {o.name}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <div class="row">
        <button
          type="button"
          class="primary"
          disabled={!changed}
          onClick={() =>
            ask({
              text: `Change ${person.login}'s role or organization? Their grants end, and they are signed out of every browser and session.`,
              confirm: 'Change role',
              run: () => patch(`/people/${person.id}`, { role, organizationId: org || null }),
              done: `${person.login} is now ${ROLE_LABEL[role] ?? role}.`,
            })
          }
        >
          Save role
        </button>
      </div>
      <div class="row">
        <Field id="e-password" label="New password" hint="They must change it at their next sign-in.">
          <TextInput id="e-password" type="password" value={pw} onValue={setPw} autoComplete="new-password" />
        </Field>
        <button
          type="button"
          class="danger"
          disabled={pw.length === 0}
          onClick={() =>
            ask({
              text: `Reset ${person.login}'s password? They are signed out everywhere and must choose a new password at their next sign-in.`,
              confirm: 'Reset password',
              run: async () => {
                await patch(`/people/${person.id}`, { password: pw });
                setPw('');
              },
              done: `${person.login}'s password was reset; they change it at their next sign-in.`,
            })
          }
        >
          Reset password
        </button>
      </div>
      <h3>Access overview</h3>
      <ErrorBox error={access.error} />
      {access.data?.blocked && (
        <p class="error" data-testid="access-blocked">
          {access.data.blocked === 'disabled'
            ? 'Disabled: no access at all while disabled.'
            : access.data.blocked === 'locked'
              ? `Locked until ${fmtTime(access.data.lockedUntil)}.`
              : 'Must change the password an administrator set before anything else.'}
        </p>
      )}
      {access.data && access.data.computers.length === 0 ? (
        <p>No computers.</p>
      ) : (
        <table class="list" data-testid="access-overview">
          <thead>
            <tr>
              <th scope="col">Computer</th>
              <th scope="col">Organization</th>
              <th scope="col">Through</th>
              <th scope="col">JIT settings</th>
            </tr>
          </thead>
          <tbody>
            {(access.data?.computers ?? []).map((c) => (
              <tr key={c.id} data-computer={c.name}>
                <td data-label="Computer">
                  {c.name} <small>({c.protocols.join(', ')})</small>
                </td>
                <td data-label="Organization">{c.organizationName}</td>
                <td data-label="Through">
                  {VIA_LABEL[c.via]}
                  {c.grantedAt && <small> since {fmtTime(c.grantedAt)}</small>}
                </td>
                <td data-label="JIT settings">{jitText(c.jit)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="row">
        <button type="button" onClick={props.onClose}>
          Close
        </button>
      </div>
    </section>
  );
}
import { PersonAccounts } from './person-accounts.js';

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
  const [accountsOf, setAccountsOf] = useState<PersonRow | null>(null);
  const roles: Role[] = isGlobal ? ['technician', 'auditor', 'org_admin', 'global_admin'] : ['technician', 'auditor', 'org_admin'];
  const invitations = useLoad(async () => listOf<Invitation>(await get('/invitations'), 'invitations'));
  const [invite, setInvite] = useState<Omit<NewPerson, 'password'> | null>(null);
  const [link, setLink] = useState<string | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const [pending, setPending] = useState<Pending | null>(null);

  const sendInvite = async (e: Event) => {
    e.preventDefault();
    if (!invite) return;
    setErr(null);
    setNotice(null);
    try {
      const r = await post<{ path: string; login: string }>('/invitations', {
        login: invite.login.trim(), displayName: invite.displayName.trim(), email: invite.email.trim() || null, role: invite.role, organizationId: invite.organizationId || null,
      });
      setLink(location.origin + r.path);
      setInvite(null);
      invitations.reload();
    } catch (x) {
      setErr(x);
    }
  };
  const confirmPending = async () => {
    if (!pending) return;
    const p = pending;
    setPending(null);
    await act(p.run, p.done);
    invitations.reload();
  };

  const create = editor.submit(async () => {
    if (!form) return;
    await post('/people', { ...form, login: form.login.trim(), email: form.email.trim() || undefined, organizationId: form.organizationId || null });
    setNotice(`${form.login} was created. At their first sign-in with the initial password they choose their own and set up two-factor sign-in.`);
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
        <>
        <button
          type="button"
          class="primary"
          onClick={() => {
            setLink(null);
            setInvite({ login: '', displayName: '', email: '', role: 'technician', organizationId: me.person?.organizationId ?? orgs.data?.[0]?.id ?? '' });
          }}
        >
          Invite person
        </button>
        <button
          type="button"
          onClick={() => {
            editor.reset();
            setForm({ login: '', displayName: '', email: '', role: 'technician', organizationId: me.person?.organizationId ?? orgs.data?.[0]?.id ?? '', password: '' });
          }}
        >
          Add person
        </button>
        </>
      }
    >
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorBox error={people.error ?? err} />
      {pending && (
        <div class="editor" role="alertdialog" aria-labelledby="confirm-text" data-testid="confirm">
          <p id="confirm-text">{pending.text}</p>
          <div class="row">
            <button type="button" class="danger" onClick={() => void confirmPending()}>
              {pending.confirm}
            </button>
            <button type="button" onClick={() => setPending(null)}>
              Cancel
            </button>
          </div>
        </div>
      )}
      {link && (
        <div class="notice" role="status">
          <p>
            Invitation link, shown <strong>only now</strong>. Give it to the person privately; it works once. They choose their password and set up two-factor
            sign-in.
          </p>
          <input class="wide" readOnly value={link} aria-label="Invitation link" data-testid="invitation-link" onFocus={(e) => (e.currentTarget as HTMLInputElement).select()} />
        </div>
      )}
      {invite && (
        <form class="editor" onSubmit={(e) => void sendInvite(e)} aria-labelledby="invite-title">
          <h2 id="invite-title">Invite a person</h2>
          <div class="grid2">
            <Field id="i-login" label="Login">
              <TextInput id="i-login" value={invite.login} onValue={(v) => setInvite({ ...invite, login: v })} required autoComplete="off" />
            </Field>
            <Field id="i-name" label="Display name">
              <TextInput id="i-name" value={invite.displayName} onValue={(v) => setInvite({ ...invite, displayName: v })} />
            </Field>
            <Field id="i-email" label="Email (optional)">
              <TextInput id="i-email" type="email" value={invite.email} onValue={(v) => setInvite({ ...invite, email: v })} />
            </Field>
            <Field id="i-role" label="Role">
              <select id="i-role" value={invite.role} onChange={(e) => setInvite({ ...invite, role: (e.currentTarget as HTMLSelectElement).value as Role })}>
                {roles.map((r) => (
                  <option key={r} value={r}>
                    {ROLE_LABEL[r]}
                  </option>
                ))}
              </select>
            </Field>
            <Field id="i-org" label="Organization">
              <select id="i-org" value={invite.organizationId} disabled={!isGlobal} onChange={(e) => setInvite({ ...invite, organizationId: (e.currentTarget as HTMLSelectElement).value })}>
                {isGlobal && <option value="">none (all organizations)</option>}
                {(orgs.data ?? []).map((o) => (
                  <option key={o.id} value={o.id}>
                    {o.name}
                  </option>
                ))}
              </select>
            </Field>
          </div>
          <div class="row">
            <button type="submit" class="primary">
              Create invitation link
            </button>
            <button type="button" onClick={() => setInvite(null)}>
              Cancel
            </button>
          </div>
        </form>
      )}
      {editing && people.data?.find((p) => p.id === editing) && (
        <PersonEditor
          key={editing}
          person={people.data.find((p) => p.id === editing)!}
          roles={roles}
          orgs={orgs.data ?? []}
          isGlobal={isGlobal}
          ask={setPending}
          onClose={() => setEditing(null)}
        />
      )}
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
      {accountsOf && <PersonAccounts key={accountsOf.id} person={accountsOf} onClose={() => setAccountsOf(null)} />}
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
                {p.disabled ? (
                  <span class="badge bad">disabled</span>
                ) : p.locked ? (
                  <span class="badge warn">locked until {fmtTime(p.lockedUntil)}</span>
                ) : (
                  <span class="badge ok">active</span>
                )}{' '}
                {!p.totpEnabled && <span class="badge">no 2FA yet</span>} {p.mustChangePassword && <span class="badge">must change password</span>}
              </td>
              <td class="row-actions">
                {p.role !== 'global_admin' || isGlobal ? (
                  <button type="button" onClick={() => setAccountsOf(p)}>
                    Existing accounts
                  </button>
                ) : null}
                <button type="button" onClick={() => setEditing(editing === p.id ? null : p.id)} aria-expanded={editing === p.id}>
                  {p.id === me.person?.id ? 'Access' : 'Edit'}
                </button>
                {p.id !== me.person?.id && (
                  <>
                    {p.locked && (
                      <button type="button" onClick={() => setPending({ text: `Unlock ${p.login} now? They can sign in again at once.`, confirm: 'Unlock', run: () => patch(`/people/${p.id}`, { locked: false }), done: `${p.login} is unlocked.` })}>
                        Unlock
                      </button>
                    )}
                    <button
                      type="button"
                      onClick={() =>
                        setPending({
                          text: `Reset ${p.login}'s two-factor sign-in? They are signed out and enroll again at their next sign-in.`,
                          confirm: 'Reset MFA',
                          run: () => post(`/people/${p.id}/reset-mfa`),
                          done: `${p.login} enrolls two-factor sign-in again at next sign-in.`,
                        })
                      }
                    >
                      Reset MFA
                    </button>
                    <button
                      type="button"
                      onClick={() =>
                        setPending({
                          text: `Revoke every passkey of ${p.login}? They no longer sign in with them, are signed out, and their live sessions end. Without a password they need a new invitation.`,
                          confirm: 'Reset passkeys',
                          run: () => post(`/people/${p.id}/reset-passkeys`),
                          done: `${p.login}'s passkeys are revoked.`,
                        })
                      }
                    >
                      Reset passkeys
                    </button>
                    <button
                      type="button"
                      class={p.disabled ? '' : 'danger'}
                      onClick={() =>
                        p.disabled
                          ? void act(() => patch(`/people/${p.id}`, { disabled: false }), `${p.login} is enabled.`)
                          : setPending({ text: `Disable ${p.login}? They are signed out and their live sessions end.`, confirm: 'Disable', run: () => patch(`/people/${p.id}`, { disabled: true }), done: `${p.login} is disabled and signed out.` })
                      }
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
      {(invitations.data ?? []).some((i) => i.state === 'open') && (
        <>
          <h2>Open invitations</h2>
          <table class="list" data-testid="invitations">
            <thead>
              <tr>
                <th scope="col">Login</th>
                <th scope="col">Role</th>
                <th scope="col">Organization</th>
                <th scope="col">Invited by</th>
                <th scope="col">Link valid until</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {(invitations.data ?? [])
                .filter((i) => i.state === 'open')
                .map((i) => (
                  <tr key={i.id} data-invitation={i.login}>
                    <td data-label="Login">{i.login}</td>
                    <td data-label="Role">{ROLE_LABEL[i.role] ?? i.role}</td>
                    <td data-label="Organization">{orgName(i.organizationId)}</td>
                    <td data-label="Invited by">{i.createdBy}</td>
                    <td data-label="Link valid until">{fmtTime(i.expiresAt)}</td>
                    <td class="row-actions">
                      <button type="button" class="danger" onClick={() => setPending({ text: `Withdraw the invitation of ${i.login}? Their link stops working.`, confirm: 'Withdraw', run: () => del(`/invitations/${i.id}`), done: `The invitation of ${i.login} is withdrawn.` })}>
                        Withdraw
                      </button>
                    </td>
                  </tr>
                ))}
            </tbody>
          </table>
        </>
      )}
    </Page>
  );
}
