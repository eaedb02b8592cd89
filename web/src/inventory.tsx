import { useState } from 'preact/hooks';
import { API, ApiError, csrf, errorText } from './api.js';

/**
 * "Export YAML" / "Import YAML" on the Computers page: the inventory in the
 * `jitgate apply -f` format (`GET /inventory/export`, `POST /inventory/import`
 * with `content-type: application/yaml`). Offered to global admins only; the
 * gateway checks every request itself (canUseInventory). Raw fetch because
 * the body is YAML text, not JSON as `api()` sends.
 */

async function request(method: 'GET' | 'POST', path: string, yaml?: string): Promise<Response> {
  const headers: Record<string, string> = { accept: method === 'GET' ? 'application/yaml, application/json' : 'application/json' };
  if (method !== 'GET') {
    headers['x-csrf-token'] = csrf();
    headers['content-type'] = 'application/yaml';
  }
  let res: Response;
  try {
    res = await fetch(API + path, { method, headers, body: yaml, credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'JIT_ERR_NETWORK', 'the gateway cannot be reached', {});
  }
  if (!res.ok) {
    let e: { code?: string; message?: string; details?: Record<string, unknown> } = {};
    try {
      e = (await res.json()) as typeof e;
    } catch {
      // not JSON: generic message below
    }
    throw new ApiError(res.status, e.code ?? `HTTP_${res.status}`, e.message ?? `request failed (${res.status})`, e.details ?? {});
  }
  return res;
}

/**
 * The individual problems of a refused import, in words: `details.fields`, or
 * `details.reason` split at each "; <path>: " (messages may contain "; " themselves).
 */
function problemsOf(err: unknown): string[] {
  if (!(err instanceof ApiError) || err.code !== 'JIT_ERR_VALIDATION') return [];
  const fields = Object.entries(err.fields);
  if (fields.length) return fields.map(([k, v]) => `${k}: ${v}`);
  const reason = typeof err.details.reason === 'string' ? err.details.reason : '';
  const parts = reason.split(/; (?=[\w-]+(?:\.[\w-]+)*: )/).filter(Boolean);
  return parts.length > 1 ? parts : [];
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

export function InventoryActions(props: { onImported: () => void }) {
  const [open, setOpen] = useState(false);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);

  const exportYaml = async () => {
    setError(null);
    setDone(null);
    try {
      const blob = await (await request('GET', '/inventory/export')).blob();
      const url = URL.createObjectURL(new Blob([blob], { type: 'application/yaml' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = 'jitgate-inventory.yaml';
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      setError(e);
    }
  };

  const readFile = async (input: HTMLInputElement) => {
    const file = input.files?.[0];
    if (!file) return;
    setError(null);
    setDone(null);
    try {
      setText(await file.text());
    } catch (e) {
      setError(e);
    }
  };

  const importYaml = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const r = (await (await request('POST', '/inventory/import', text)).json()) as { organizations: number; computers: number };
      setDone(`Imported: ${plural(r.organizations, 'organization', 'organizations')} and ${plural(r.computers, 'computer', 'computers')} applied.`);
      props.onImported();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const problems = problemsOf(error);
  return (
    <>
      <div class="row">
        <button type="button" onClick={() => void exportYaml()}>
          Export YAML
        </button>
        <button type="button" aria-expanded={open} aria-controls="inventory-import" onClick={() => setOpen((o) => !o)}>
          Import YAML
        </button>
      </div>
      {!open && (error || done) && <Outcome error={error} problems={problems} done={done} />}
      {open && (
        <form id="inventory-import" class="editor" onSubmit={importYaml} aria-labelledby="inventory-import-title">
          <h2 id="inventory-import-title">Import inventory (YAML)</h2>
          <p class="hint">
            Same format as <code>jitgate apply -f</code> and “Export YAML”. Organizations and computers are created or updated by name; nothing else is
            removed. The whole file is checked first: if anything is wrong, nothing changes.
          </p>
          <div class="field">
            <label for="inventory-file">YAML file</label>
            <input id="inventory-file" type="file" accept=".yaml,.yml,application/yaml,text/yaml,text/plain" onChange={(e) => void readFile(e.currentTarget)} />
          </div>
          <div class="field">
            <label for="inventory-text">Inventory YAML</label>
            <textarea id="inventory-text" rows={12} spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          </div>
          <Outcome error={error} problems={problems} done={done} />
          <div class="row">
            <button type="submit" class="primary" disabled={busy || !text.trim()}>
              Import
            </button>
            <button type="button" onClick={() => setOpen(false)}>
              Close
            </button>
          </div>
        </form>
      )}
    </>
  );
}

function Outcome({ error, problems, done }: { error: unknown; problems: string[]; done: string | null }) {
  if (done)
    return (
      <p class="notice" role="status">
        {done}
      </p>
    );
  if (!error) return null;
  return (
    <div class="error" role="alert" data-testid="inventory-error">
      {problems.length ? (
        <>
          <p>The inventory was not imported; nothing changed:</p>
          <ul>
            {problems.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
        </>
      ) : (
        <p>{errorText(error)}</p>
      )}
    </div>
  );
}
