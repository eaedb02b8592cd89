import { useState } from 'preact/hooks';
import { del, get, listOf, patch, post, put, type Organization, type PersonRow, type Team } from '../api.js';
import { labelText, parseLabels } from '../labels.js';
import { can, useSession } from '../session.js';
import { ErrorBox, Field, FormErrors, Page, TextInput, useForm, useLoad, type FormSpec } from '../ui.js';

/**
 * Teams (admins): people of one organization, synced from identity-provider
 * groups where set, granted computers by label (docs/auth.md "Teams and
 * labels"). The server decides who may do what (gateway/teams/team-policy.ts).
 */

const TEAM_FIELDS: FormSpec = {
  organizationId: { label: 'Organization', id: 't-org' },
  name: { label: 'Name', id: 't-name' },
  description: { label: 'Description', id: 't-description' },
  syncGroups: { label: 'Synced groups', id: 't-groups' },
};

const GRANT_FIELDS: FormSpec = { selector: { label: 'Computers labelled', id: 'g-selector' } };

const splitGroups = (text: string) => text.split('\n').map((s) => s.trim()).filter(Boolean);

function TeamEditor(props: { team: Team | null; orgs: Organization[]; onDone: (t: Team) => void; onCancel: () => void }) {
  const [f, setF] = useState({
    organizationId: props.team?.organizationId ?? props.orgs[0]?.id ?? '',
    name: props.team?.name ?? '',
    description: props.team?.description ?? '',
    groups: (props.team?.syncGroups ?? []).join('\n'),
  });
  const form = useForm(TEAM_FIELDS);
  const fe = (k: string) => form.fields[k] ?? Object.entries(form.fields).find(([p]) => p.startsWith(`${k}.`))?.[1];
  const save = form.submit(async () => {
    const body = { name: f.name.trim(), description: f.description.trim(), syncGroups: splitGroups(f.groups) };
    const t = props.team ? await patch<Team>(`/teams/${props.team.id}`, body) : await post<Team>('/teams', { ...body, organizationId: f.organizationId });
    props.onDone(t);
  });
  return (
    <form class="editor" onSubmit={(e) => void save(e)} ref={form.ref} noValidate aria-labelledby="team-editor-title">
      <h2 id="team-editor-title">{props.team ? `Edit team ${props.team.name}` : 'New team'}</h2>
      <FormErrors form={form} />
      <div class="grid2">
        {!props.team && (
          <Field id="t-org" label="Organization" error={fe('organizationId')}>
            <select id="t-org" value={f.organizationId} onChange={(e) => setF({ ...f, organizationId: (e.currentTarget as HTMLSelectElement).value })}>
              {props.orgs.map((o) => (
                <option key={o.id} value={o.id}>
                  {o.name}
                </option>
              ))}
            </select>
          </Field>
        )}
        <Field id="t-name" label="Name" error={fe('name')}>
          <TextInput id="t-name" value={f.name} onValue={(v) => setF({ ...f, name: v })} error={fe('name')} required />
        </Field>
        <Field id="t-description" label="Description" error={fe('description')}>
          <TextInput id="t-description" value={f.description} onValue={(v) => setF({ ...f, description: v })} error={fe('description')} />
        </Field>
      </div>
      <Field id="t-groups" label="Synced groups" error={fe('syncGroups')} hint="One per line: an OIDC groups-claim value or a directory group DN. At each sign-in, people of this organization in one of these groups join the team, and leave it when they are no longer in any. Members you add by hand stay.">
        <textarea id="t-groups" rows={3} value={f.groups} onInput={(e) => setF({ ...f, groups: (e.currentTarget as HTMLTextAreaElement).value })} />
      </Field>
      <div class="row">
        <button type="submit" class="primary" disabled={form.busy}>
          Save
        </button>
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function TeamDetail({ id, people, canManage, onChanged }: { id: string; people: PersonRow[]; canManage: boolean; onChanged: () => void }) {
  const team = useLoad(async () => get<Team>(`/teams/${id}`), [id]);
  const [pick, setPick] = useState('');
  const [selector, setSelector] = useState('');
  const [err, setErr] = useState<unknown>(null);
  const grantForm = useForm(GRANT_FIELDS);
  const t = team.data;
  const act = async (fn: () => Promise<unknown>) => {
    setErr(null);
    try {
      await fn();
      team.reload();
      onChanged();
    } catch (e) {
      setErr(e);
    }
  };
  const addGrant = grantForm.submit(
    async () => {
      await post(`/teams/${id}/grants`, { selector: parseLabels(selector) });
      setSelector('');
      team.reload();
      onChanged();
    },
    (): Record<string, string> => (parseLabels(selector) && selector.trim() ? {} : { selector: 'write labels as key=value, separated by commas' }),
  );
  if (!t) return <ErrorBox error={team.error} />;
  const memberIds = new Set((t.members ?? []).map((m) => m.personId));
  const candidates = people.filter((p) => p.organizationId === t.organizationId && !memberIds.has(p.id) && !p.disabled);
  const grantError = grantForm.fields.selector ?? Object.entries(grantForm.fields).find(([p]) => p.startsWith('selector.'))?.[1];
  return (
    <section class="team-detail" aria-labelledby="team-detail-title">
      <h2 id="team-detail-title">Team {t.name}</h2>
      {t.description && <p>{t.description}</p>}
      <ErrorBox error={err} />
      <h3 id="team-members-title">Members</h3>
      <ul class="grants" aria-labelledby="team-members-title">
        {(t.members ?? []).map((m) => (
          <li key={m.personId} data-member={m.login}>
            {m.login} {m.displayName && `(${m.displayName})`} {m.source === 'sync' && <span class="badge">synced</span>}{' '}
            {canManage && (
              <button
                type="button"
                class="link danger"
                aria-label={`Remove ${m.login} from ${t.name}`}
                onClick={() => {
                  if (confirm(`Remove ${m.login} from ${t.name}? Sessions this team's grants allowed end now.`)) void act(() => del(`/teams/${id}/members/${m.personId}`));
                }}
              >
                Remove
              </button>
            )}
          </li>
        ))}
        {(t.members ?? []).length === 0 && <li class="muted">No members yet: add people below, or name the groups to sync.</li>}
      </ul>
      {canManage && (
        <div class="row">
          <label for="team-person" class="sr-only">
            Person to add
          </label>
          <select id="team-person" value={pick} onChange={(e) => setPick((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">Choose a person…</option>
            {candidates.map((p) => (
              <option key={p.id} value={p.id}>
                {p.login} ({p.displayName})
              </option>
            ))}
          </select>
          <button type="button" disabled={!pick} onClick={() => void act(() => put(`/teams/${id}/members/${pick}`)).then(() => setPick(''))}>
            Add member
          </button>
        </div>
      )}
      <h3 id="team-grants-title">Grants by label</h3>
      <p class="hint">Technicians of this team may use every computer of the organization that carries all the labels of a grant, restricted ones included.</p>
      <ul class="grants" aria-labelledby="team-grants-title">
        {(t.grants ?? []).map((g) => (
          <li key={g.id} data-grant={g.text}>
            <code>{labelText(g.selector)}</code>{' '}
            {canManage && (
              <button
                type="button"
                class="link danger"
                aria-label={`Remove grant ${g.text}`}
                onClick={() => {
                  if (confirm(`Remove the grant ${g.text} from ${t.name}? Sessions it allowed end now.`)) void act(() => del(`/teams/${id}/grants/${g.id}`));
                }}
              >
                Remove
              </button>
            )}
          </li>
        ))}
        {(t.grants ?? []).length === 0 && <li class="muted">No grants yet.</li>}
      </ul>
      {canManage && (
        <form class="row" onSubmit={(e) => void addGrant(e)} ref={grantForm.ref} noValidate aria-label={`Grant ${t.name} computers by label`}>
          <Field id="g-selector" label="Computers labelled" error={grantError} hint="key=value, separated by commas; all must match, e.g. env=prod, customer=acme">
            <TextInput id="g-selector" value={selector} onValue={setSelector} error={grantError} />
          </Field>
          <button type="submit" disabled={grantForm.busy}>
            Grant
          </button>
        </form>
      )}
    </section>
  );
}

export function TeamsPage() {
  const { me } = useSession();
  const admin = can(me.person, 'admin');
  const list = useLoad(async () => listOf<Team>(await get('/teams'), 'teams'));
  const refs = useLoad(async () => {
    const [orgs, people] = await Promise.all([get('/organizations').then((r) => listOf<Organization>(r, 'organizations')), get('/people').then((r) => listOf<PersonRow>(r, 'people'))]);
    return { orgs, people };
  });
  const [editing, setEditing] = useState<Team | 'new' | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const orgName = (id: string) => refs.data?.orgs.find((o) => o.id === id)?.name ?? '';
  const remove = async (t: Team) => {
    if (!confirm(`Delete team ${t.name}? Its members lose what its grants allowed, and those sessions end now.`)) return;
    try {
      await del(`/teams/${t.id}`);
      if (open === t.id) setOpen(null);
      list.reload();
    } catch (e) {
      setErr(e);
    }
  };
  return (
    <Page
      title="Teams"
      actions={
        admin && (
          <button type="button" class="primary" onClick={() => setEditing('new')} disabled={!refs.data}>
            Add team
          </button>
        )
      }
    >
      <ErrorBox error={list.error ?? refs.error ?? err} />
      {editing && refs.data && (
        <TeamEditor
          key={editing === 'new' ? 'new' : editing.id}
          team={editing === 'new' ? null : editing}
          orgs={refs.data.orgs}
          onCancel={() => setEditing(null)}
          onDone={(t) => {
            setEditing(null);
            setOpen(t.id);
            list.reload();
          }}
        />
      )}
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Team</th>
            {me.person?.role === 'global_admin' && <th scope="col">Organization</th>}
            <th scope="col">Members</th>
            <th scope="col">Grants</th>
            <th scope="col">Synced groups</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((t) => (
            <tr key={t.id} data-team={t.name}>
              <td data-label="Team">
                <strong>{t.name}</strong>
              </td>
              {me.person?.role === 'global_admin' && <td data-label="Organization">{orgName(t.organizationId)}</td>}
              <td data-label="Members">{t.memberCount ?? 0}</td>
              <td data-label="Grants">{t.grantCount ?? 0}</td>
              <td data-label="Synced groups">{t.syncGroups.length ? t.syncGroups.join(', ') : <span class="muted">none</span>}</td>
              <td class="row-actions">
                <button type="button" onClick={() => setOpen(open === t.id ? null : t.id)} aria-expanded={open === t.id} aria-label={`Members and grants of ${t.name}`}>
                  Members and grants
                </button>
                {admin && (
                  <>
                    <button type="button" onClick={() => setEditing(t)} disabled={!refs.data} aria-label={`Edit ${t.name}`}>
                      Edit
                    </button>
                    <button type="button" class="danger" onClick={() => void remove(t)} aria-label={`Delete ${t.name}`}>
                      Delete
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
          {list.data?.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                No teams yet. Add one, then add people and grant it computers by label.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {open && refs.data && <TeamDetail key={open} id={open} people={refs.data.people} canManage={admin} onChanged={list.reload} />}
    </Page>
  );
}
