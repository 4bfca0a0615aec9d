/**
 * The dashboard's sign-in logic (src/ui/lib/session.ts): what each role sees in settings, where the login
 * page sends the user back (same-site paths only), which requests carry the CSRF token, the token form's
 * checks.
 */
import { describe, expect, it } from 'vitest';
import {
  displayName,
  hasRole,
  identified,
  initials,
  isStateChanging,
  loginUrlFor,
  type Me,
  oidcLoginHref,
  redirectTarget,
  roleIn,
  settingsFor,
  timeOf,
  tokenFormError,
} from '../../src/ui/lib/session.js';

function me(role: Me['role'], operator = false): Me {
  return {
    user: { id: 'u1', name: 'ada', operator },
    tenant: 'team-a',
    role,
    tenants: [{ tenant: 'team-a', role: role ?? 'viewer' }],
    csrfToken: 'c',
  };
}

describe('roles and settings', () => {
  it('shows settings to admins and operators only', () => {
    expect(settingsFor(me('viewer'))).toEqual([]);
    expect(settingsFor(me('editor'))).toEqual([]);
    expect(settingsFor(me('admin'))).toEqual(['tokens', 'users', 'audit']);
    expect(settingsFor(me('viewer', true))).toEqual(['tokens', 'users', 'audit']);
    expect(settingsFor(null)).toEqual([]);
  });

  it('ranks roles: an editor is also a viewer, not an admin', () => {
    expect(hasRole(me('editor'), 'viewer')).toBe(true);
    expect(hasRole(me('editor'), 'editor')).toBe(true);
    expect(hasRole(me('editor'), 'admin')).toBe(false);
    expect(hasRole({ ...me(null) }, 'viewer')).toBe(false);
  });

  it('finds a user’s role in one tenant', () => {
    const u = {
      roles: [
        { tenant: 'a', role: 'admin' as const },
        { tenant: 'b', role: 'viewer' as const },
      ],
    };
    expect(roleIn(u, 'b')).toBe('viewer');
    expect(roleIn(u, 'c')).toBeNull();
  });
});

describe('redirects', () => {
  it('returns to same-site paths only', () => {
    expect(redirectTarget('?redirect=%2Fjobs%2Fj1%3Ft%3D5')).toBe('/jobs/j1?t=5');
    expect(redirectTarget('?redirect=https%3A%2F%2Fevil.example')).toBe('/');
    expect(redirectTarget('?redirect=%2F%2Fevil.example')).toBe('/');
    expect(redirectTarget('?redirect=%2F%5Cevil.example')).toBe('/');
    expect(redirectTarget('?redirect=%2Flogin')).toBe('/');
    expect(redirectTarget('')).toBe('/');
  });

  it('makes login links that come back to the page', () => {
    expect(loginUrlFor('/')).toBe('/login');
    expect(loginUrlFor('/alerts?state=firing')).toBe('/login?redirect=%2Falerts%3Fstate%3Dfiring');
    expect(loginUrlFor('/login?redirect=%2Fx')).toBe('/login');
    expect(oidcLoginHref('/api/tw/v1/auth/oidc/corp/login', '/')).toBe('/api/tw/v1/auth/oidc/corp/login');
    expect(oidcLoginHref('/api/tw/v1/auth/oidc/corp/login', '/jobs/j 1')).toBe(
      '/api/tw/v1/auth/oidc/corp/login?redirect=%2Fjobs%2Fj%201',
    );
  });
});

describe('requests and forms', () => {
  it('sends the CSRF token on state-changing methods only', () => {
    for (const m of ['POST', 'put', 'PATCH', 'DELETE']) expect(isStateChanging(m)).toBe(true);
    for (const m of ['GET', 'head', 'OPTIONS', undefined]) expect(isStateChanging(m)).toBe(false);
  });

  it('checks the token form before sending it', () => {
    expect(tokenFormError({ name: ' ', scope: 'read', rateLimit: '' })).toMatch(/name/);
    expect(tokenFormError({ name: 'agents', scope: null, rateLimit: '' })).toMatch(/scope/);
    expect(tokenFormError({ name: 'agents', scope: 'edit', rateLimit: '' })).toMatch(/scope/);
    expect(tokenFormError({ name: 'agents', scope: 'ingest', rateLimit: '-1' })).toMatch(/rate limit/);
    expect(tokenFormError({ name: 'agents', scope: 'ingest', rateLimit: 'x' })).toMatch(/rate limit/);
    expect(tokenFormError({ name: 'agents', scope: 'ingest', rateLimit: '50' })).toBeNull();
    expect(tokenFormError({ name: 'agents', scope: 'admin', rateLimit: '' })).toBeNull();
  });

  it('reads times as ms or ISO strings', () => {
    expect(timeOf(1_700_000_000_000)).toBe(1_700_000_000_000);
    expect(timeOf('2026-01-02T03:04:05.000Z')).toBe(Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(timeOf(null)).toBeNull();
    expect(timeOf('not a time')).toBeNull();
  });

  it('names the caller in the user menu', () => {
    expect(displayName(me('admin'))).toBe('ada');
    expect(displayName({ ...me('admin'), user: null, via: 'token:abc123' })).toBe('token abc123');
    expect(displayName({ ...me('admin'), user: null, via: 'token abc123' })).toBe('token abc123');
    expect(identified({ ...me('admin'), user: null, via: 'token abc123' })).toBe(true);
    expect(identified({ ...me('admin'), user: null, via: 'anonymous' })).toBe(false);
    expect(identified(me('viewer'))).toBe(true);
    expect(identified(null)).toBe(false);
    expect(displayName({ ...me('admin'), user: null, via: 'anonymous' })).toBe('anonymous');
    expect(initials('ada lovelace')).toBe('AL');
    expect(initials('grace')).toBe('GR');
    expect(initials('a.b@example.com')).toBe('AB');
  });
});
