import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { errorText } from './api.js';
import { linkClick } from './router.js';

export function Link(props: { href: string; children: ComponentChildren; class?: string; 'aria-current'?: 'page' }) {
  return (
    <a href={props.href} class={props.class} aria-current={props['aria-current']} onClick={linkClick}>
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
        <small class="field-error" id={`${props.id}-error`} role="alert">
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
  return (
    <input
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
