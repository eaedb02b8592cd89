import { useState } from 'preact/hooks';
import { del, get, listOf, patch, post, type Organization } from '../api.js';
import { can, useSession } from '../session.js';
import { RetentionCell } from './evidence.js';
import { Checkbox, ErrorBox, Field, FormErrors, Page, TextInput, useForm, useLoad, type FormSpec } from '../ui.js';

const ORGANIZATION_FIELDS: FormSpec = {
  name: { label: 'Name', id: 'o-name' },
  sharedCode: { label: 'Shared account code', id: 'o-code' },
  requirePasskeys: { label: 'Require passkeys', id: 'o-passkeys' },
};

export function OrganizationsPage() {
  const { me } = useSession();
  const writable = can(me.person, 'globalAdmin');
  const { data, error, reload } = useLoad(async () => listOf<Organization>(await get('/organizations'), 'organizations'));
  const [form, setForm] = useState<{ id?: string; name: string; sharedCode: string; requirePasskeys: boolean } | null>(null);
  const editor = useForm(ORGANIZATION_FIELDS);
  const fields = editor.fields;
  const [err, setErr] = useState<unknown>(null);
  const edit = (v: { id?: string; name: string; sharedCode: string; requirePasskeys: boolean }) => {
    editor.reset();
    setForm(v);
  };

  const save = editor.submit(async () => {
    if (!form) return;
    const body = { name: form.name.trim(), sharedCode: form.sharedCode.trim(), requirePasskeys: form.requirePasskeys };
    if (form.id) await patch(`/organizations/${form.id}`, body);
    else await post('/organizations', body);
    setForm(null);
    reload();
  });
  const remove = async (o: Organization) => {
    if (!confirm(`Delete organization ${o.name}?`)) return;
    try {
      await del(`/organizations/${o.id}`);
      reload();
    } catch (x) {
      setErr(x);
    }
  };

  return (
    <Page
      title="Organizations"
      actions={
        writable && (
          <button type="button" class="primary" onClick={() => edit({ name: '', sharedCode: '', requirePasskeys: false })}>
            Add organization
          </button>
        )
      }
    >
      <ErrorBox error={error ?? err} />
      {form && (
        <form class="editor" onSubmit={(e) => void save(e)} ref={editor.ref} noValidate aria-labelledby="org-editor-title">
          <h2 id="org-editor-title">{form.id ? 'Edit organization' : 'New organization'}</h2>
          <FormErrors form={editor} />
          <div class="grid2">
            <Field id="o-name" label="Name" error={fields.name}>
              <TextInput id="o-name" value={form.name} onValue={(v) => setForm({ ...form, name: v })} error={fields.name} required />
            </Field>
            <Field id="o-code" label="Shared account code" error={fields.sharedCode} hint="Shared accounts are named msp-<code>.">
              <TextInput id="o-code" value={form.sharedCode} onValue={(v) => setForm({ ...form, sharedCode: v })} error={fields.sharedCode} required />
            </Field>
          </div>
          <Checkbox
            id="o-passkeys"
            label="Require passkeys (phishing-resistant MFA)"
            checked={form.requirePasskeys}
            onChange={(v) => setForm({ ...form, requirePasskeys: v })}
            hint="Its people finish every sign-in with a passkey; TOTP and an identity provider's MFA only let them enroll one."
          />
          <div class="row">
            <button type="submit" class="primary" disabled={editor.busy}>
              Save
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
            <th scope="col">Name</th>
            <th scope="col">Shared code</th>
            <th scope="col">Passkeys</th>
            <th scope="col">Recordings kept</th>
            {writable && (
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {(data ?? []).map((o) => (
            <tr key={o.id}>
              <td data-label="Name">{o.name}</td>
              <td data-label="Shared code">{o.sharedCode}</td>
              <td data-label="Passkeys">{o.requirePasskeys ? 'required' : 'optional'}</td>
              <td data-label="Recordings kept">
                <RetentionCell organizationId={o.id} />
              </td>
              {writable && (
                <td class="row-actions">
                  <button type="button" onClick={() => edit({ id: o.id, name: o.name, sharedCode: o.sharedCode, requirePasskeys: o.requirePasskeys ?? false })}>
                    Edit
                  </button>
                  <button type="button" class="danger" onClick={() => void remove(o)}>
                    Delete
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </Page>
  );
}
