import { AuditSettings } from '../components/settings/audit';
import { TokensSettings } from '../components/settings/tokens';
import { UsersSettings } from '../components/settings/users';
import { useSession } from '../hooks/use-session';
import { SETTINGS_PAGES, type SettingsPage as SettingsSection, settingsFor } from '../lib/session';
import { onLinkClick } from '../router';

/** Settings of the current tenant: API tokens, users and the audit log, for the tenant's admins. */
export function SettingsPage({ section }: { section: SettingsSection | null }) {
  const { me } = useSession();
  const allowed = settingsFor(me);
  const current = section ?? allowed[0] ?? null;
  return (
    <div className="settings">
      <div className="page-head">
        <h1>Settings</h1>
        {me && <span className="muted">tenant {me.tenant}</span>}
      </div>
      {allowed.length > 0 && (
        <nav className="tabs" aria-label="Settings pages">
          {SETTINGS_PAGES.filter((p) => allowed.includes(p.page)).map((p) => (
            <a
              key={p.page}
              href={`/settings/${p.page}`}
              onClick={onLinkClick}
              aria-current={current === p.page ? 'page' : undefined}
            >
              {p.label}
            </a>
          ))}
        </nav>
      )}
      {current === null || !allowed.includes(current) ? (
        <div className="empty" data-testid="settings-forbidden">
          <h2>Nothing to manage here</h2>
          <p>
            {me
              ? `Settings need the admin role in tenant ${me.tenant}; you are ${me.role ?? 'without a role'} there.`
              : 'Sign in to manage settings.'}
          </p>
        </div>
      ) : current === 'tokens' ? (
        <TokensSettings />
      ) : current === 'users' ? (
        <UsersSettings />
      ) : (
        <AuditSettings />
      )}
    </div>
  );
}
