/**
 * Settings > Users: the people of this tenant with their roles, changing a role or disabling a user, and a form
 * that adds one. One file per settings page, as the job page's panels are (components/job).
 */
import { useId, useState } from 'react';
import { createUser, fetchUsers, type UserRow, updateUser } from '../../api';
import { fmtTime } from '../../format';
import { useList } from '../../hooks/use-list';
import { useSession } from '../../hooks/use-session';
import { type Role, roleIn, timeOf } from '../../lib/session';
import { DataTable } from '../data-table';
import { FormError } from '../widgets';

const ROLES: readonly Role[] = ['viewer', 'editor', 'admin'];

export function UsersSettings() {
  const { me, refresh } = useSession();
  const users = useList(fetchUsers);
  const [error, setError] = useState<string | null>(null);
  const tenant = me?.tenant ?? '';
  const change = async (u: UserRow, patch: { role?: Role; disabled?: boolean }) => {
    setError(null);
    try {
      await updateUser(u.name, patch);
      users.reload();
      // One's own role may have changed what the menu shows.
      if (me?.user && u.id === me.user.id) await refresh();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <section aria-labelledby="users-title" data-testid="settings-users">
      <h2 id="users-title">Users</h2>
      <p className="muted">
        People who sign in with a password or single sign-on, and their role in tenant {tenant}. Users of
        single sign-on get their roles from the provider's groups at each sign-in.
      </p>
      <NewUserForm onCreated={users.reload} />
      <FormError message={error ?? users.error} />
      {users.items && users.items.length === 0 && <p className="muted">No users yet.</p>}
      {users.items && users.items.length > 0 && (
        <DataTable
          testId="users-table"
          caption={`Users and their roles in tenant ${tenant}`}
          columns={['Name', `Role in ${tenant}`, 'Other tenants', 'Created', 'Last sign-in', 'State']}
        >
          {users.items.map((u) => {
            const role = roleIn(u, tenant);
            const self = me?.user?.id === u.id;
            return (
              <tr key={u.id} data-user={u.name}>
                <td>
                  {u.name}
                  {u.operator && <span className="badge user-operator">operator</span>}
                  {self && <span className="muted small"> (you)</span>}
                </td>
                <td>
                  <select
                    aria-label={`Role of ${u.name} in ${tenant}`}
                    value={role ?? ''}
                    disabled={self}
                    onChange={(e) => void change(u, { role: e.target.value as Role })}
                  >
                    {role === null && <option value="">none</option>}
                    {ROLES.map((r) => (
                      <option key={r} value={r}>
                        {r}
                      </option>
                    ))}
                  </select>
                </td>
                <td className="small">
                  {u.roles
                    .filter((r) => r.tenant !== tenant)
                    .map((r) => `${r.tenant} (${r.role})`)
                    .join(', ') || '—'}
                </td>
                <td>{fmtTime(timeOf(u.createdAt))}</td>
                <td>{u.lastLoginAt ? fmtTime(timeOf(u.lastLoginAt)) : 'never'}</td>
                <td>
                  <button
                    type="button"
                    className="btn btn-small"
                    disabled={self}
                    aria-label={`${u.disabled ? 'Enable' : 'Disable'} ${u.name}`}
                    onClick={() => void change(u, { disabled: !u.disabled })}
                  >
                    {u.disabled ? 'Enable' : 'Disable'}
                  </button>{' '}
                  <span className={`badge ${u.disabled ? 'status-failed' : 'status-running'}`}>
                    {u.disabled ? 'disabled' : 'active'}
                  </span>
                </td>
              </tr>
            );
          })}
        </DataTable>
      )}
    </section>
  );
}

function NewUserForm({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const id = useId();
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return setError('Enter a username.');
    if (password.length < 8) return setError('The password needs at least 8 characters.');
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await createUser({ name: name.trim(), password, role });
      setDone(`Added ${name.trim()} as ${role}.`);
      setName('');
      setPassword('');
      onCreated();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="settings-form" onSubmit={submit} aria-labelledby={`${id}-title`} data-testid="user-form">
      <h3 id={`${id}-title`}>Add a user</h3>
      <div className="field">
        <label htmlFor={`${id}-name`}>Username</label>
        <input
          id={`${id}-name`}
          type="text"
          autoComplete="off"
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-password`}>Initial password</label>
        <input
          id={`${id}-password`}
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-role`}>Role</label>
        <select id={`${id}-role`} value={role} onChange={(e) => setRole(e.target.value as Role)}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </div>
      <FormError message={error} />
      {done && (
        <p className="good" role="status">
          {done}
        </p>
      )}
      <button type="submit" className="btn btn-primary" disabled={busy}>
        Add user
      </button>
    </form>
  );
}
