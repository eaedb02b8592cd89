import { useEffect, useState } from 'preact/hooks';
import { del, get, listOf, patch, post, put, type AccountStore, type Computer, type JitSettings, type Organization, type PersonRow } from '../api.js';
import { InventoryActions } from '../inventory.js';
import { APPROVAL_FIELDS, ApprovalPolicyFields } from './requests.js';
import { STEP_UP_FIELDS, StepUpField } from './step-up-field.js';
import { MODERATOR_FIELDS, ModeratorFields } from './policy-fields.js';
import { can, useSession } from '../session.js';
import { Checkbox, ErrorBox, Field, FormErrors, Page, TextInput, useForm, useLoad, type FormSpec } from '../ui.js';
import { LabelChips, labelText, parseLabels } from '../labels.js';

interface Preset {
  settings: Partial<JitSettings>;
  description: string;
}

/** Shown when GET /jit-presets does not answer; same as provisioner/jit-settings.ts JIT_PRESETS. */
const FALLBACK_PRESETS: Record<'maximumSecurity' | 'balanced', Preset> = {
  maximumSecurity: {
    settings: { enabled: true, deleteOnCheckIn: true, reuseExistingAccount: false, accountMode: 'named' },
    description: 'A fresh account is created for every session and deleted when it ends. Nothing is left behind.',
  },
  balanced: {
    settings: { enabled: true, deleteOnCheckIn: false, reuseExistingAccount: true, accountMode: 'named' },
    description: 'One account per person, reused: enabled for the session, then disabled with a new random password nobody knows.',
  },
};

const PRESET_LABEL = { maximumSecurity: 'Maximum security', balanced: 'Balanced' } as const;

function normalizePresets(raw: unknown): Record<'maximumSecurity' | 'balanced', Preset> {
  const out = { ...FALLBACK_PRESETS };
  if (raw && typeof raw === 'object') {
    for (const k of ['maximumSecurity', 'balanced'] as const) {
      const v = (raw as Record<string, unknown>)[k];
      if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        const settings = (o.settings && typeof o.settings === 'object' ? o.settings : o) as Partial<JitSettings>;
        const { description: _d, ...rest } = settings as Partial<JitSettings> & { description?: string };
        out[k] = { settings: rest, description: typeof o.description === 'string' ? o.description : FALLBACK_PRESETS[k].description };
      }
    }
  }
  return out;
}

/** Session policy switches kept in `computer.policy` (gateway/api/computer-policy.ts); everything that widens a session is off by default. */
const POLICY_TOGGLES: [string, string][] = [
  ['recordInput', 'Record typed keys too, SSH and RDP (they can capture typed secrets)'],
  ['sftp', 'Allow SFTP / file transfer (SSH)'],
  ['portForwarding', 'Allow port forwarding (SSH)'],
  ['printing', 'Allow printing (RDP)'],
  ['rdpIgnoreCert', 'Accept any RDP server certificate (prefer a pinned fingerprint)'],
];

/** RDP controls chosen from a list (gateway/api/computer-policy.ts); the gateway enforces each, whatever guacd does. */
const RDP_CHOICES: { key: string; label: string; dflt: string; options: [string, string][]; hint?: string }[] = [
  {
    key: 'clipboard', label: 'Clipboard (RDP and browser terminal)', dflt: 'off',
    options: [['off', 'Off'], ['remote-to-local', 'Remote → local only (copy out)'], ['local-to-remote', 'Local → remote only (paste in)'], ['both', 'Both ways']],
  },
  {
    key: 'drive', label: 'File transfer, redirected drive (RDP)', dflt: 'off',
    options: [['off', 'Off'], ['upload', 'Upload only'], ['download', 'Download only'], ['both', 'Upload and download']],
    hint: 'Every transfer is audited with its file name and size.',
  },
  { key: 'rdpResizeMethod', label: 'Resize method', dflt: 'display-update', options: [['display-update', 'Display update'], ['reconnect', 'Reconnect'], ['none', 'None (fixed size)']] },
  { key: 'rdpColorDepth', label: 'Colour depth', dflt: '', options: [['', "guacd's choice"], ['8', '8 bit'], ['16', '16 bit'], ['24', '24 bit'], ['32', '32 bit']] },
];

interface Form {
  id?: string;
  organizationId: string;
  name: string;
  address: string;
  protocols: ('ssh' | 'rdp')[];
  sshPort: string;
  rdpPort: string;
  domainStore: string;
  localStore: string;
  jit: JitSettings;
  adminGroupsText: string;
  policy: Record<string, unknown>;
  restricted: boolean;
  labelsText: string;
}

const DEFAULT_JIT: JitSettings = {
  enabled: true,
  deleteOnCheckIn: true,
  reuseExistingAccount: false,
  adminGroups: [],
  accountMode: 'named',
  accountType: 'domain',
  maxSessionMinutes: 480,
};

function toForm(c: Computer | null, orgs: Organization[]): Form {
  const jit = { ...DEFAULT_JIT, ...(c?.jit ?? {}) };
  return {
    id: c?.id,
    organizationId: c?.organizationId ?? orgs[0]?.id ?? '',
    name: c?.name ?? '',
    address: c?.address ?? '',
    protocols: c?.protocols ?? ['ssh'],
    sshPort: String(c?.sshPort ?? 22),
    rdpPort: String(c?.rdpPort ?? 3389),
    domainStore: c?.domainStore ?? '',
    localStore: c?.localStore ?? '',
    jit,
    adminGroupsText: jit.adminGroups.join(', '),
    policy: { ...(c?.policy ?? {}) },
    restricted: c?.restricted ?? false,
    labelsText: labelText(c?.labels),
  };
}

function toBody(f: Form) {
  const jit: JitSettings = { ...f.jit, adminGroups: f.adminGroupsText.split(',').map((s) => s.trim()).filter(Boolean) };
  // Elevation creates no account: a container has no use, and the server refuses one.
  if (!jit.container || jit.mode === 'elevate') delete jit.container;
  return {
    organizationId: f.organizationId,
    name: f.name.trim(),
    address: f.address.trim(),
    protocols: f.protocols,
    sshPort: Number(f.sshPort),
    rdpPort: Number(f.rdpPort),
    domainStore: f.domainStore || null,
    localStore: f.localStore || null,
    jit,
    // The host key is pinned under Host key (scan → confirm), never through the form.
    policy: Object.fromEntries(Object.entries(f.policy).filter(([k]) => k !== 'sshHostKeySha256')),
    restricted: f.restricted,
    labels: parseLabels(f.labelsText) ?? {},
  };
}

interface ScannedKey {
  algorithm: string;
  sha256: string;
  address: string;
  port: number;
}

/**
 * The computer's pinned SSH host key (gateway/api/host-keys.ts): no pin, no
 * SSH session. Scan shows what the computer presents; Confirm pins it only
 * if the computer still presents that key.
 */
function HostKey({ computer }: { computer: Computer }) {
  const [pinned, setPinned] = useState<string | null>(typeof computer.policy.sshHostKeySha256 === 'string' ? computer.policy.sshHostKeySha256 : null);
  const [scanned, setScanned] = useState<ScannedKey | null>(null);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const act = async (fn: () => Promise<void>) => {
    setErr(null);
    setBusy(true);
    try {
      await fn();
    } catch (e) {
      setErr(e);
    } finally {
      setBusy(false);
    }
  };
  const base = `/computers/${computer.id}/host-key`;
  return (
    <fieldset data-testid="host-key">
      <legend>Host key</legend>
      {pinned ? (
        <p>
          Pinned: <code data-testid="host-key-pinned">{pinned}</code>
        </p>
      ) : (
        <p class="error" data-testid="host-key-unpinned">
          Not pinned — SSH connections to {computer.name} are refused until an admin confirms its host key.
        </p>
      )}
      <ErrorBox error={err} />
      {scanned && scanned.sha256 !== pinned && (
        <p>
          {scanned.address}:{scanned.port} presents {scanned.algorithm} <code data-testid="host-key-scanned">{scanned.sha256}</code>. Compare it with{' '}
          <code>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</code> on the computer before you confirm.
        </p>
      )}
      <div class="row">
        <button type="button" disabled={busy} onClick={() => void act(async () => setScanned(await post<ScannedKey>(`${base}/scan`)))}>
          Scan
        </button>
        {scanned && scanned.sha256 !== pinned && (
          <button
            type="button"
            class="primary"
            disabled={busy}
            onClick={() =>
              void act(async () => {
                await put(base, { sha256: scanned.sha256 });
                setPinned(scanned.sha256);
                setScanned(null);
              })
            }
          >
            Confirm pin
          </button>
        )}
        {pinned && (
          <button
            type="button"
            class="link danger"
            disabled={busy}
            onClick={() =>
              void act(async () => {
                await del(base);
                setPinned(null);
              })
            }
          >
            Unpin
          </button>
        )}
      </div>
    </fieldset>
  );
}

function Grants({ computer, people }: { computer: Computer; people: PersonRow[] }) {
  const { data, error, reload } = useLoad(async () => listOf<Record<string, unknown>>(await get(`/computers/${computer.id}/grants`), 'grants'), [computer.id]);
  const [pick, setPick] = useState('');
  const [err, setErr] = useState<unknown>(null);
  const granted = new Set((data ?? []).map((g) => String(g.personId ?? g.id)));
  const techs = people.filter((p) => p.role === 'technician' && !granted.has(p.id) && p.organizationId === computer.organizationId);
  const name = (g: Record<string, unknown>) => {
    const id = String(g.personId ?? g.id);
    const p = people.find((x) => x.id === id);
    return String(g.login ?? p?.login ?? id) + (p?.displayName ? ` (${p.displayName})` : '');
  };
  const act = async (fn: () => Promise<unknown>) => {
    setErr(null);
    try {
      await fn();
      reload();
    } catch (e) {
      setErr(e);
    }
  };
  return (
    <fieldset>
      <legend>Shared with (restricted computer)</legend>
      <ErrorBox error={error ?? err} />
      <ul class="grants">
        {(data ?? []).map((g) => (
          <li key={String(g.personId ?? g.id)}>
            {name(g)}{' '}
            <button type="button" class="link danger" onClick={() => void act(() => del(`/computers/${computer.id}/grants/${String(g.personId ?? g.id)}`))}>
              Unshare
            </button>
          </li>
        ))}
        {data && data.length === 0 && <li class="muted">No technician has a grant yet.</li>}
      </ul>
      <div class="row">
        <label for="grant-person" class="sr-only">
          Technician
        </label>
        <select id="grant-person" value={pick} onChange={(e) => setPick((e.currentTarget as HTMLSelectElement).value)}>
          <option value="">Choose a technician…</option>
          {techs.map((p) => (
            <option key={p.id} value={p.id}>
              {p.login} ({p.displayName})
            </option>
          ))}
        </select>
        <button type="button" disabled={!pick} onClick={() => void act(() => put(`/computers/${computer.id}/grants/${pick}`)).then(() => setPick(''))}>
          Share
        </button>
      </div>
    </fieldset>
  );
}

/** The editor's fields by API path (gateway/api/computers.ts), for the error summary and focus. */
const COMPUTER_FIELDS: FormSpec = {
  organizationId: { label: 'Organization', id: 'c-org' },
  name: { label: 'Name', id: 'c-name' },
  labels: { label: 'Labels', id: 'c-labels' },
  address: { label: 'Address', id: 'c-address' },
  protocols: { label: 'Protocols', id: 'c-proto-ssh' },
  sshPort: { label: 'SSH port', id: 'c-sshport' },
  rdpPort: { label: 'RDP port', id: 'c-rdpport' },
  domainStore: { label: 'Domain account store', id: 'c-domainstore' },
  localStore: { label: 'Local account store', id: 'c-localstore' },
  'jit.mode': { label: 'How admin rights are given', id: 'j-jit-mode' },
  'jit.deleteOnCheckIn': { label: 'Delete the account when the session ends', id: 'j-delete' },
  'jit.reuseExistingAccount': { label: 'Reuse the same person\'s account', id: 'j-reuse' },
  'jit.accountType': { label: 'Account type', id: 'j-type' },
  'jit.adminGroups': { label: 'Admin groups', id: 'j-groups' },
  'jit.container': { label: 'Container for accounts', id: 'j-container' },
  'jit.maxSessionMinutes': { label: 'Maximum session (minutes)', id: 'j-max' },
  'policy.rdpSecurity': { label: 'RDP security', id: 'p-rdpsec' },
  'policy.rdpCertFingerprint': { label: 'RDP certificate SHA-256 fingerprint', id: 'p-rdpfp' },
  ...Object.fromEntries(RDP_CHOICES.map((c) => [`policy.${c.key}`, { label: c.label, id: `p-${c.key}` }])),
  'policy.clipboardMaxBytes': { label: 'Clipboard limit (bytes)', id: 'p-clipboardMaxBytes' },
  'policy.fileMaxBytes': { label: 'File size limit (bytes)', id: 'p-fileMaxBytes' },
  'policy.rdpTimezone': { label: 'Time zone (IANA name)', id: 'p-rdpTimezone' },
  ...APPROVAL_FIELDS,
  ...STEP_UP_FIELDS,
  ...MODERATOR_FIELDS,
};

function Editor(props: { computer: Computer | null; orgs: Organization[]; stores: AccountStore[]; people: PersonRow[]; presets: Record<'maximumSecurity' | 'balanced', Preset>; onDone: () => void; onCancel: () => void }) {
  const [f, setF] = useState<Form>(() => toForm(props.computer, props.orgs));
  const form = useForm(COMPUTER_FIELDS);
  const { fields, busy } = form;
  const set = <K extends keyof Form>(k: K, v: Form[K]) => setF((x) => ({ ...x, [k]: v }));
  const setJit = <K extends keyof JitSettings>(k: K, v: JitSettings[K]) => setF((x) => ({ ...x, jit: { ...x.jit, [k]: v } }));
  const fe = (path: string) => fields[path] ?? fields[path.replace(/^jit\./, 'jit/')];
  // The API sends an org admin only their organization's stores; for a global admin, offer those the chosen
  // organization owns and the unowned ones. The server checks again on save: this is convenience, not control.
  const orgName = props.orgs.find((o) => o.id === f.organizationId)?.name ?? '';
  const usable = props.stores.filter((s) => !s.organizations || s.organizations.includes(orgName));
  const ldapStores = usable.filter((s) => s.type === 'ldap');
  const localStores = usable.filter((s) => s.type !== 'ldap');
  const chosen = (name: string) => props.stores.find((s) => s.name === name);
  const storesInUse = [
    ...(f.jit.accountType !== 'local' && f.domainStore ? [f.domainStore] : []),
    ...(f.jit.accountType !== 'domain' && f.localStore ? [f.localStore] : []),
  ].map(chosen);
  const groupChoices = [...new Set(storesInUse.flatMap((s) => s?.groups ?? []))];
  const containerChoices = chosen(f.domainStore)?.allowedContainers ?? [];
  // A stored value the organization may no longer use stays visible (the server names the problem on save).
  const keep = (value: string, offered: AccountStore[]) => (value && !offered.some((s) => s.name === value) ? [value] : []);
  const presetActive = (k: 'maximumSecurity' | 'balanced') =>
    Object.entries(props.presets[k].settings).every(([key, v]) => (f.jit as unknown as Record<string, unknown>)[key] === v);

  const save = form.submit(
    async () => {
      if (f.id) await patch(`/computers/${f.id}`, toBody(f));
      else await post('/computers', toBody(f));
      props.onDone();
    },
    (): Record<string, string> => (parseLabels(f.labelsText) ? {} : { labels: 'write labels as key=value, separated by commas' }),
  );
  // The server names a bad label by its path (labels.<key>): shown on the one Labels field.
  const labelsError = fe('labels') ?? Object.entries(fields).find(([k]) => k.startsWith('labels.'))?.[1];

  return (
    <form class="editor" onSubmit={(e) => void save(e)} ref={form.ref} aria-labelledby="editor-title" noValidate>
      <h2 id="editor-title">{f.id ? `Edit ${props.computer?.name}` : 'New computer'}</h2>
      <FormErrors form={form} />
      <div class="grid2">
        <Field id="c-org" label="Organization" error={fe('organizationId')}>
          <select id="c-org" value={f.organizationId} onChange={(e) => set('organizationId', (e.currentTarget as HTMLSelectElement).value)}>
            {props.orgs.map((o) => (
              <option key={o.id} value={o.id}>
                {o.name}
              </option>
            ))}
          </select>
        </Field>
        <Field id="c-name" label="Name" error={fe('name')}>
          <TextInput id="c-name" value={f.name} onValue={(v) => set('name', v)} error={fe('name')} required />
        </Field>
        <Field id="c-address" label="Address (host name or IP)" error={fe('address')}>
          <TextInput id="c-address" value={f.address} onValue={(v) => set('address', v)} error={fe('address')} required />
        </Field>
        <Field id="c-labels" label="Labels" error={labelsError} hint="key=value, separated by commas, e.g. env=prod, customer=acme, os=windows. Teams are granted computers by label.">
          <TextInput id="c-labels" value={f.labelsText} onValue={(v) => set('labelsText', v)} error={labelsError} />
        </Field>
        <fieldset class="inline">
          <legend>Protocols</legend>
          {(['ssh', 'rdp'] as const).map((p) => (
            <Checkbox key={p} id={`c-proto-${p}`} label={p.toUpperCase()} checked={f.protocols.includes(p)} onChange={(on) => set('protocols', on ? [...f.protocols, p] : f.protocols.filter((x) => x !== p))} />
          ))}
          {fe('protocols') && <small class="field-error">{fe('protocols')}</small>}
        </fieldset>
        <Field id="c-sshport" label="SSH port" error={fe('sshPort')}>
          <TextInput id="c-sshport" type="number" min={1} max={65535} value={f.sshPort} onValue={(v) => set('sshPort', v)} error={fe('sshPort')} />
        </Field>
        <Field id="c-rdpport" label="RDP port" error={fe('rdpPort')}>
          <TextInput id="c-rdpport" type="number" min={1} max={65535} value={f.rdpPort} onValue={(v) => set('rdpPort', v)} error={fe('rdpPort')} />
        </Field>
        <Field id="c-domainstore" label="Domain account store (LDAP)" error={fe('domainStore')}>
          <select id="c-domainstore" value={f.domainStore} onChange={(e) => set('domainStore', (e.currentTarget as HTMLSelectElement).value)}>
            <option value="">none</option>
            {ldapStores.map((s) => (
              <option key={s.name} value={s.name}>
                {s.name}
              </option>
            ))}
            {keep(f.domainStore, ldapStores).map((n) => (
              <option key={n} value={n}>
                {n} (not available to this organization)
              </option>
            ))}
          </select>
        </Field>
        <Field id="c-localstore" label="Local account store (SSH / WinRM)" error={fe('localStore')}>
          <select id="c-localstore" value={f.localStore} onChange={(e) => set('localStore', (e.currentTarget as HTMLSelectElement).value)}>
            <option value="">none</option>
            {localStores.map((s) => (
              <option key={s.name} value={s.name}>
                {s.name} ({s.type})
              </option>
            ))}
            {keep(f.localStore, localStores).map((n) => (
              <option key={n} value={n}>
                {n} (not available to this organization)
              </option>
            ))}
          </select>
        </Field>
      </div>

      <fieldset>
        <legend>Just-in-time accounts</legend>
        <div class="presets" role="group" aria-label="Presets">
          {(['maximumSecurity', 'balanced'] as const).map((k) => (
            <button
              key={k}
              type="button"
              class={presetActive(k) ? 'preset active' : 'preset'}
              aria-pressed={presetActive(k)}
              onClick={() => setF((x) => ({ ...x, jit: { ...x.jit, ...props.presets[k].settings } }))}
            >
              <strong>{PRESET_LABEL[k]}</strong>
              <span>{props.presets[k].description}</span>
            </button>
          ))}
        </div>
        <Checkbox id="j-enabled" label="Create a just-in-time account for each session" checked={f.jit.enabled} onChange={(v) => setJit('enabled', v)} hint="Off: people sign in with an existing account; nothing is created." />
        {f.jit.enabled && (
          <Field
            id="j-jit-mode"
            label="How admin rights are given"
            error={fe('jit.mode')}
            hint={
              (f.jit.mode ?? 'create') === 'elevate'
                ? "Each person's own existing account on the store joins the admin groups for the session and leaves them afterwards; nothing is created. Memberships the account already had are never removed. Map people to their accounts on the People page; without a mapping the store's naming rule applies. jitgate holds no password for these accounts: people type their own in the remote login."
                : 'A new account is made for each session (or a kept one re-enabled), joins the admin groups and is removed or disabled afterwards; jitgate holds its password and signs the person in.'
            }
          >
            <select id="j-jit-mode" value={f.jit.mode ?? 'create'} onChange={(e) => setJit('mode', (e.currentTarget as HTMLSelectElement).value as NonNullable<JitSettings['mode']>)}>
              <option value="create">Create a just-in-time account</option>
              <option value="elevate">Elevate the person's existing account</option>
            </select>
          </Field>
        )}
        {f.jit.mode !== 'elevate' && (
          <>
            <Checkbox id="j-delete" label="Delete the account when the session ends" checked={f.jit.deleteOnCheckIn} onChange={(v) => setJit('deleteOnCheckIn', v)} />
            {fe('jit.deleteOnCheckIn') && <small class="field-error">{fe('jit.deleteOnCheckIn')}</small>}
            <Checkbox id="j-reuse" label="Reuse the same person's account next time (disabled and password rotated in between)" checked={f.jit.reuseExistingAccount} onChange={(v) => setJit('reuseExistingAccount', v)} />
            {fe('jit.reuseExistingAccount') && <small class="field-error">{fe('jit.reuseExistingAccount')}</small>}
          </>
        )}
        <div class="grid2">
          <Field id="j-mode" label="Account naming">
            <select id="j-mode" value={f.jit.accountMode} onChange={(e) => setJit('accountMode', (e.currentTarget as HTMLSelectElement).value as JitSettings['accountMode'])}>
              <option value="named">Named: one per person (login_xxxxxx)</option>
              <option value="shared">Shared: one per organization (msp-code)</option>
            </select>
          </Field>
          <Field id="j-type" label="Account type" error={fe('jit.accountType')}>
            <select id="j-type" value={f.jit.accountType} onChange={(e) => setJit('accountType', (e.currentTarget as HTMLSelectElement).value as JitSettings['accountType'])}>
              <option value="domain">Domain (LDAP store)</option>
              <option value="local">Local (SSH / WinRM store)</option>
              <option value="choose">Let the person choose</option>
            </select>
          </Field>
          <Field
            id="j-groups"
            label="Admin groups (comma separated)"
            error={fe('jit.adminGroups')}
            hint={groupChoices.length ? `Groups on the chosen store: ${groupChoices.join(', ')}.` : 'Choose an account store first: its configured groups are the choices.'}
          >
            <TextInput id="j-groups" value={f.adminGroupsText} onValue={(v) => set('adminGroupsText', v)} error={fe('jit.adminGroups')} list="j-groups-choices" />
          </Field>
          <datalist id="j-groups-choices">
            {groupChoices.map((g) => (
              <option key={g} value={g} />
            ))}
          </datalist>
          {f.domainStore && f.jit.accountType !== 'local' && f.jit.mode !== 'elevate' && (
            <Field id="j-container" label="Container for accounts (optional DN)" error={fe('jit.container')} hint={`Empty: the store's default. Allowed: ${containerChoices.join('; ') || 'the store default only'}.`}>
              <TextInput id="j-container" value={f.jit.container ?? ''} onValue={(v) => setJit('container', v.trim() || undefined)} error={fe('jit.container')} list="j-container-choices" />
            </Field>
          )}
          <datalist id="j-container-choices">
            {containerChoices.map((c) => (
              <option key={c} value={c} />
            ))}
          </datalist>
          <Field id="j-max" label="Maximum session (minutes)" error={fe('jit.maxSessionMinutes')}>
            <TextInput id="j-max" type="number" min={1} max={1440} value={String(f.jit.maxSessionMinutes)} onValue={(v) => setJit('maxSessionMinutes', Number(v))} error={fe('jit.maxSessionMinutes')} />
          </Field>
        </div>
      </fieldset>

      <fieldset>
        <legend>Policy</legend>
        {POLICY_TOGGLES.map(([key, label]) => (
          <Checkbox key={key} id={`p-${key}`} label={label} checked={(f.policy[key] as boolean | undefined) ?? false} onChange={(v) => set('policy', { ...f.policy, [key]: v })} />
        ))}
        {f.protocols.includes('rdp') && (
          <div class="grid2">
            <Field
              id="p-rdpsec"
              label="RDP security"
              error={fe('policy.rdpSecurity')}
              // What the mode means for the injected JIT credentials (docs/rdp.md, "Security modes and credential injection").
              hint={
                (f.policy.rdpSecurity ?? 'nla') === 'nla'
                  ? 'NLA (recommended): the computer checks the injected credentials before any desktop is shown.'
                  : 'TLS/Any: the remote computer shows its own login screen if the injected credentials are refused; people could type other credentials there. Use NLA unless the computer cannot do it.'
              }
            >
              <select id="p-rdpsec" value={String(f.policy.rdpSecurity ?? 'nla')} onChange={(e) => set('policy', { ...f.policy, rdpSecurity: (e.currentTarget as HTMLSelectElement).value })}>
                <option value="nla">NLA</option>
                <option value="tls">TLS</option>
                <option value="rdp">RDP (legacy encryption)</option>
                <option value="any">Any</option>
              </select>
            </Field>
            {RDP_CHOICES.map((c) => (
              <Field key={c.key} id={`p-${c.key}`} label={c.label} error={fe(`policy.${c.key}`)} {...(c.hint ? { hint: c.hint } : {})}>
                <select
                  id={`p-${c.key}`}
                  value={f.policy[c.key] === true ? 'both' : f.policy[c.key] === false ? 'off' : String(f.policy[c.key] ?? c.dflt)}
                  onChange={(e) => {
                    const v = (e.currentTarget as HTMLSelectElement).value;
                    const { [c.key]: _old, ...rest } = f.policy;
                    // Colour depth is a number in the policy; empty leaves it to guacd.
                    set('policy', v === '' ? rest : { ...rest, [c.key]: c.key === 'rdpColorDepth' ? Number(v) : v });
                  }}
                >
                  {c.options.map(([v, l]) => (
                    <option key={v} value={v}>
                      {l}
                    </option>
                  ))}
                </select>
              </Field>
            ))}
            {(['clipboardMaxBytes', 'fileMaxBytes'] as const).map((k) => (
              <Field key={k} id={`p-${k}`} label={k === 'clipboardMaxBytes' ? 'Clipboard limit (bytes)' : 'File size limit (bytes)'} error={fe(`policy.${k}`)}>
                <TextInput
                  id={`p-${k}`}
                  value={String(f.policy[k] ?? (k === 'clipboardMaxBytes' ? 262144 : 104857600))}
                  onValue={(v) => set('policy', { ...f.policy, [k]: /^\d+$/.test(v.trim()) ? Number(v.trim()) : v })}
                  error={fe(`policy.${k}`)}
                />
              </Field>
            ))}
            <Field id="p-rdpTimezone" label="Time zone (IANA name)" error={fe('policy.rdpTimezone')} hint="For example Europe/Berlin; empty: the remote computer's own.">
              <TextInput
                id="p-rdpTimezone"
                value={String(f.policy.rdpTimezone ?? '')}
                onValue={(v) => {
                  const { rdpTimezone: _old, ...rest } = f.policy;
                  set('policy', v.trim() ? { ...rest, rdpTimezone: v.trim() } : rest);
                }}
                error={fe('policy.rdpTimezone')}
              />
            </Field>
            <Field id="p-rdpfp" label="RDP certificate SHA-256 fingerprint" error={fe('policy.rdpCertFingerprint')}>
              <TextInput
                id="p-rdpfp"
                value={String(f.policy.rdpCertFingerprint ?? '')}
                onValue={(v) => {
                  const { rdpCertFingerprint: _old, ...rest } = f.policy;
                  set('policy', v.trim() ? { ...rest, rdpCertFingerprint: v.trim() } : rest);
                }}
                error={fe('policy.rdpCertFingerprint')}
              />
            </Field>
          </div>
        )}
        <StepUpField policy={f.policy} onPolicy={(v) => set('policy', v)} fe={fe} />
        <Checkbox id="c-restricted" label="Restricted: only technicians it is shared with may connect" checked={f.restricted} onChange={(v) => set('restricted', v)} />
      </fieldset>
      <ApprovalPolicyFields policy={f.policy} onPolicy={(v) => set('policy', v)} fe={fe} />
      <ModeratorFields policy={f.policy} onPolicy={(v) => set('policy', v)} fe={fe} />

      <div class="row">
        <button type="submit" class="primary" disabled={busy}>
          Save
        </button>
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
      {props.computer && f.restricted && <Grants computer={props.computer} people={props.people} />}
      {props.computer && props.computer.protocols.includes('ssh') && <HostKey computer={props.computer} />}
    </form>
  );
}

export function ComputersPage() {
  const { me } = useSession();
  const list = useLoad(async () => listOf<Computer>(await get('/computers'), 'computers'));
  const refs = useLoad(async () => {
    const [orgs, stores, people, presets] = await Promise.all([
      get('/organizations').then((r) => listOf<Organization>(r, 'organizations')),
      get('/account-stores').then((r) => listOf<AccountStore>(r, 'stores')),
      get('/people').then((r) => listOf<PersonRow>(r, 'people')),
      get('/jit-presets').catch(() => null),
    ]);
    return { orgs, stores, people, presets: normalizePresets(presets) };
  });
  const [editing, setEditing] = useState<Computer | 'new' | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => setError(null), [editing]);

  const remove = async (c: Computer) => {
    if (!confirm(`Delete ${c.name}? Sessions on it end and its settings are removed.`)) return;
    try {
      await del(`/computers/${c.id}`);
      list.reload();
    } catch (e) {
      setError(e);
    }
  };
  const orgName = (id: string) => refs.data?.orgs.find((o) => o.id === id)?.name ?? '';

  return (
    <Page
      title="Computers"
      actions={
        <button type="button" class="primary" onClick={() => setEditing('new')} disabled={!refs.data}>
          Add computer
        </button>
      }
    >
      <ErrorBox error={list.error ?? refs.error ?? error} />
      {can(me.person, 'globalAdmin') && (
        <InventoryActions
          onImported={() => {
            list.reload();
            refs.reload();
          }}
        />
      )}
      {editing && refs.data && (
        <Editor
          key={editing === 'new' ? 'new' : editing.id}
          computer={editing === 'new' ? null : editing}
          {...refs.data}
          onCancel={() => setEditing(null)}
          onDone={() => {
            setEditing(null);
            list.reload();
          }}
        />
      )}
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Name</th>
            {me.person?.role === 'global_admin' && <th scope="col">Organization</th>}
            <th scope="col">Address</th>
            <th scope="col">Protocols</th>
            <th scope="col">JIT</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((c) => (
            <tr key={c.id} data-computer={c.name}>
              <td data-label="Name">
                <strong>{c.name}</strong> {c.restricted && <span class="badge">restricted</span>}
                <LabelChips labels={c.labels} />
              </td>
              {me.person?.role === 'global_admin' && <td data-label="Organization">{orgName(c.organizationId)}</td>}
              <td data-label="Address">{c.address}</td>
              <td data-label="Protocols">{c.protocols.join(', ').toUpperCase()}</td>
              <td data-label="JIT">{c.jit?.enabled === false ? 'off' : c.jit?.mode === 'elevate' ? `${c.jit.accountType ?? ''}, elevates own account` : `${c.jit?.accountType ?? ''}, ${c.jit?.deleteOnCheckIn === false ? 'kept' : 'deleted after'}`}</td>
              <td class="row-actions">
                <button type="button" onClick={() => setEditing(c)} disabled={!refs.data}>
                  Edit
                </button>
                <button type="button" class="danger" onClick={() => void remove(c)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
          {list.data?.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                No computers yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Page>
  );
}
