import { useEffect, useId, useRef, useState } from 'react';
import { switchTenant } from '../api';
import { useSession } from '../hooks/use-session';
import { displayName, initials, SETTINGS_PAGES, settingsFor } from '../lib/session';
import { onLinkClick } from '../router';

/**
 * The header's user menu: who is signed in, the current tenant with a switcher among the user's tenants,
 * the settings pages the user may use, and sign out. A disclosure (button + panel): Escape or a click
 * elsewhere closes it and focus returns to the button.
 */
export function UserMenu() {
  const { me, refresh, signOut } = useSession();
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [switching, setSwitching] = useState(false);
  const button = useRef<HTMLButtonElement>(null);
  const panel = useRef<HTMLDivElement>(null);
  const panelId = useId();
  const tenantId = useId();

  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        setOpen(false);
        button.current?.focus();
      }
    };
    const onClick = (e: MouseEvent) => {
      const t = e.target as Node;
      if (!panel.current?.contains(t) && !button.current?.contains(t)) setOpen(false);
    };
    document.addEventListener('keydown', onKey);
    document.addEventListener('mousedown', onClick);
    // The first control of the panel takes focus, so keyboard users start inside it.
    panel.current?.querySelector<HTMLElement>('select, a, button')?.focus();
    return () => {
      document.removeEventListener('keydown', onKey);
      document.removeEventListener('mousedown', onClick);
    };
  }, [open]);

  if (!me) return null;
  const name = displayName(me);
  const pages = settingsFor(me);
  const role = me.user?.operator ? 'operator' : me.role;

  const onTenant = async (tenant: string) => {
    setSwitching(true);
    setError(null);
    try {
      await switchTenant(tenant);
      await refresh();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setSwitching(false);
    }
  };

  return (
    <div className="user-menu">
      <button
        ref={button}
        type="button"
        className="user-btn"
        data-testid="user-menu"
        aria-expanded={open}
        aria-controls={panelId}
        onClick={() => setOpen((o) => !o)}
      >
        <span className="avatar" aria-hidden="true">
          {initials(name)}
        </span>
        <span className="user-btn-text">
          <span className="user-name">{name}</span>
          <span className="user-tenant">
            {me.tenant}
            {role ? ` · ${role}` : ''}
          </span>
        </span>
        <span className="sr-only">, account menu</span>
      </button>
      {open && (
        <div ref={panel} id={panelId} className="user-panel" data-testid="user-panel">
          <p className="user-panel-who">
            {me.user ? (
              <>
                Signed in as <strong>{me.user.name}</strong>
                {me.user.operator && <span className="badge user-operator">operator</span>}
              </>
            ) : (
              <>
                Using trainwatch as <strong>{name}</strong>
              </>
            )}
          </p>
          {me.tenants.length > 1 ? (
            <div className="user-panel-tenant">
              <label htmlFor={tenantId}>Tenant</label>
              <select
                id={tenantId}
                data-testid="tenant-switch"
                value={me.tenant}
                disabled={switching}
                onChange={(e) => void onTenant(e.target.value)}
              >
                {me.tenants.map((t) => (
                  <option key={t.tenant} value={t.tenant}>
                    {t.tenant} ({t.role})
                  </option>
                ))}
              </select>
            </div>
          ) : (
            <p className="user-panel-tenant muted">
              Tenant <strong>{me.tenant}</strong>
              {role ? `, ${role}` : ''}
            </p>
          )}
          {error && (
            <p className="bad" role="alert">
              {error}
            </p>
          )}
          {pages.length > 0 && (
            <nav aria-label="Settings">
              <ul className="user-panel-links">
                {SETTINGS_PAGES.filter((p) => pages.includes(p.page)).map((p) => (
                  <li key={p.page}>
                    <a
                      href={`/settings/${p.page}`}
                      onClick={(e) => {
                        setOpen(false);
                        onLinkClick(e);
                      }}
                    >
                      {p.label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
          )}
          {me.user ? (
            <button type="button" className="btn user-signout" onClick={() => void signOut()}>
              Sign out
            </button>
          ) : (
            <a className="btn" href={`/login?redirect=${encodeURIComponent(location.pathname)}`}>
              Sign in
            </a>
          )}
        </div>
      )}
    </div>
  );
}
