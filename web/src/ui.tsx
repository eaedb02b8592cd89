import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorText } from './api.js';
import { linkClick } from './router.js';

export function Link(props: { href: string; children: ComponentChildren; class?: string; 'aria-current'?: 'page'; 'aria-label'?: string }) {
  return (
    <a href={props.href} class={props.class} aria-current={props['aria-current']} aria-label={props['aria-label']} onClick={linkClick}>
      {props.children}
    </a>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  );
}

export function Field(props: { label: string; error?: string; hint?: string; children: ComponentChildren; id: string }) {
  return (
    <div class={props.error ? 'field invalid' : 'field'}>
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.hint && <small class="hint">{props.hint}</small>}
      {props.error && (
        <small class="field-error" id={`${props.id}-error`}>
          {props.error}
        </small>
      )}
    </div>
  );
}

export interface TextInputProps {
  id: string;
  value: string;
  onValue: (v: string) => void;
  error?: string;
  type?: 'text' | 'password' | 'email' | 'number' | 'search';
  name?: string;
  autoComplete?: string;
  required?: boolean;
  autoFocus?: boolean;
  inputMode?: 'numeric' | 'text';
  pattern?: string;
  min?: number;
  max?: number;
  placeholder?: string;
  /** id of a <datalist> of suggested values. */
  list?: string;
}

export function TextInput(p: TextInputProps) {
  // The autofocus attribute works once per document (HTML "autofocus processed" flag): an input
  // that appears later (the sign-in code step) must be focused by hand.
  const ref = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (p.autoFocus) ref.current?.focus();
  }, []);
  return (
    <input
      ref={ref}
      id={p.id}
      // preact 11 types input attributes per `type`; the union of ours is valid HTML for each
      type={(p.type ?? 'text') as 'text'}
      name={p.name}
      value={p.value}
      autoComplete={p.autoComplete}
      required={p.required}
      autoFocus={p.autoFocus}
      inputMode={p.inputMode}
      pattern={p.pattern}
      min={p.min}
      max={p.max}
      placeholder={p.placeholder}
      list={p.list}
      aria-invalid={p.error ? 'true' : undefined}
      aria-describedby={p.error ? `${p.id}-error` : undefined}
      onInput={(e) => p.onValue(e.currentTarget.value)}
    />
  );
}

export function Checkbox(props: { id: string; label: string; checked: boolean; onChange: (v: boolean) => void; hint?: string }) {
  return (
    <div class="check">
      <input type="checkbox" id={props.id} checked={props.checked} onChange={(e) => props.onChange((e.currentTarget as HTMLInputElement).checked)} />
      <label for={props.id}>{props.label}</label>
      {props.hint && <small class="hint">{props.hint}</small>}
    </div>
  );
}

/** Load data once (and again on `reload()`); errors shown, never thrown. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []): { data: T | undefined; error: unknown; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error: unknown) => live && setState({ data: undefined, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [tick, ...deps]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { ...state, reload };
}

export function fmtTime(v: string | null | undefined): string {
  if (!v) return '—';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? v : d.toLocaleString();
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export const ROLE_LABEL: Record<string, string> = {
  global_admin: 'Global admin',
  org_admin: 'Organization admin',
  technician: 'Technician',
  auditor: 'Auditor',
};

export function Page(props: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  useEffect(() => {
    document.title = `${props.title} · jitgate`;
  }, [props.title]);
  return (
    <section class="page">
      <header class="page-head">
        <h1 tabIndex={-1}>{props.title}</h1>
        {props.actions && <div class="actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

/** A form field as the error summary names it: its label and the id of the control to focus. */
export type FormSpec = Record<string, { label: string; id: string }>;

export interface FormState {
  ref: { current: HTMLFormElement | null };
  /** path (as the API names it, e.g. `jit.adminGroups`) → message */
  fields: Record<string, string>;
  error: unknown;
  busy: boolean;
  spec: FormSpec;
  /** onSubmit handler: local checks (empty required fields, `check`), then `action`; failures land in `fields`/`error`. */
  submit: (action: () => Promise<void>, check?: () => Record<string, string>) => (e: Event) => Promise<void>;
  /** Show local field errors (e.g. "the passwords differ") as a failed save would. */
  fail: (fields: Record<string, string>) => void;
  reset: () => void;
}

/**
 * The one way forms report errors: after a failed Save, a summary at the top
 * of the form lists every problem (linked to its field), and focus moves to
 * the first field in error, scrolled into view. Empty required controls are
 * reported as "required" before anything is sent; the API's 400
 * `details.fields` (gateway/api/http.ts) are mapped to fields by path.
 */
export function useForm(spec: FormSpec): FormState {
  const ref = useRef<HTMLFormElement>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [failures, setFailures] = useState(0);
  useEffect(() => {
    if (failures) focusFirstError(ref.current, spec, fields);
  }, [failures]);
  const fail = (f: Record<string, string>) => {
    setFields(f);
    setFailures((n) => n + 1);
  };
  const reset = () => {
    setFields({});
    setError(null);
  };
  const submit = (action: () => Promise<void>, check?: () => Record<string, string>) => async (e: Event) => {
    e.preventDefault();
    reset();
    const local = { ...requiredEmpty(ref.current, spec), ...(check?.() ?? {}) };
    if (Object.keys(local).length) return fail(local);
    setBusy(true);
    try {
      await action();
    } catch (err) {
      setError(err);
      fail(err instanceof ApiError ? err.fields : {});
    } finally {
      setBusy(false);
    }
  };
  return { ref, fields, error, busy, spec, submit, fail, reset };
}

function requiredEmpty(form: HTMLFormElement | null, spec: FormSpec): Record<string, string> {
  const out: Record<string, string> = {};
  if (!form) return out;
  for (const [path, { id }] of Object.entries(spec)) {
    const el = form.querySelector<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>(`#${CSS.escape(id)}`);
    if (el && el.required && !el.disabled && el.value.trim() === '') out[path] = 'required';
  }
  return out;
}

function focusFirstError(form: HTMLFormElement | null, spec: FormSpec, fields: Record<string, string>): void {
  if (!form) return;
  const targets = Object.keys(fields)
    .map((path) => (spec[path] ? form.querySelector<HTMLElement>(`#${CSS.escape(spec[path].id)}`) : null))
    .filter((el): el is HTMLElement => el !== null)
    .sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
  const first = targets[0] ?? form.querySelector<HTMLElement>('.form-errors');
  if (!first) return;
  first.scrollIntoView({ block: 'center' });
  first.focus({ preventScroll: true });
}

/** The summary at the top of a form: every problem after a failed Save, each linked to its field. */
export function FormErrors({ form }: { form: FormState }) {
  const entries = Object.entries(form.fields);
  if (!entries.length && !form.error) return null;
  const go = (id: string) => (e: MouseEvent) => {
    e.preventDefault();
    const el = document.getElementById(id);
    el?.scrollIntoView({ block: 'center' });
    el?.focus({ preventScroll: true });
  };
  return (
    <div class="form-errors" role="alert" tabIndex={-1} data-testid="form-errors">
      {entries.length ? (
        <>
          <p>
            <strong>{entries.length === 1 ? 'Not saved: 1 problem' : `Not saved: ${entries.length} problems`}</strong>
          </p>
          <ul>
            {entries.map(([path, msg]) => {
              const f = form.spec[path];
              return (
                <li key={path}>
                  {f ? (
                    <a href={`#${f.id}`} onClick={go(f.id)}>
                      {f.label}: {msg}
                    </a>
                  ) : (
                    `${path || 'form'}: ${msg}`
                  )}
                </li>
              );
            })}
          </ul>
        </>
      ) : (
        <p>{errorText(form.error)}</p>
      )}
    </div>
  );
}
