import { describe, expect, it } from 'vitest';
import { TrainwatchError } from '../model/errors.js';
import { AnonymousAuthenticator } from './auth.js';
import { MtlsAuthenticator, tenantOfCertificate } from './mtls.js';
import { type PeerCertificate, splitSubjectAltNames } from './peer-certificate.js';

const cert = (over: Partial<PeerCertificate>): PeerCertificate => ({
  authorized: true,
  commonName: 'node-1',
  subjectAltNames: [],
  fingerprint256: 'AA:BB',
  ...over,
});

function statusOf(f: () => unknown): number | string {
  try {
    f();
    return 'ok';
  } catch (err) {
    return err instanceof TrainwatchError ? err.status : String(err);
  }
}

describe('subject alternative names as Node writes them', () => {
  it('splits entries, and reads quoted values with commas', () => {
    expect(splitSubjectAltNames('DNS:a.example, URI:trainwatch://tenant/acme, IP Address:10.0.0.1')).toEqual([
      'DNS:a.example',
      'URI:trainwatch://tenant/acme',
      'IP Address:10.0.0.1',
    ]);
    expect(splitSubjectAltNames('URI:"spiffe://x/a,b", DNS:c')).toEqual(['URI:spiffe://x/a,b', 'DNS:c']);
    expect(splitSubjectAltNames('')).toEqual([]);
  });
});

describe('the tenant of a client certificate', () => {
  it('comes from a URI SAN: trainwatch://tenant/<t> or spiffe://<domain>/…/tenant/<t>', () => {
    expect(tenantOfCertificate(cert({ subjectAltNames: ['URI:trainwatch://tenant/acme'] }), {})).toBe('acme');
    expect(
      tenantOfCertificate(
        cert({ subjectAltNames: ['DNS:x', 'URI:spiffe://corp.example/ns/ml/tenant/vision'] }),
        {},
      ),
    ).toBe('vision');
    expect(tenantOfCertificate(cert({ subjectAltNames: ['URI:spiffe://corp.example/tenant/a/b'] }), {})).toBe(
      undefined,
    );
    // Not a tenant name: refused rather than used as a label value.
    expect(tenantOfCertificate(cert({ subjectAltNames: ['URI:trainwatch://tenant/Bad%20Name'] }), {})).toBe(
      undefined,
    );
    expect(tenantOfCertificate(cert({ subjectAltNames: ['DNS:trainwatch://tenant/acme'] }), {})).toBe(
      undefined,
    );
  });

  it('the mapping wins, by CN or by SAN with or without its kind', () => {
    const map = { 'node-1': 'research', 'DNS:agent.internal': 'ops', 'agent2.internal': 'infra' };
    expect(tenantOfCertificate(cert({ subjectAltNames: ['URI:trainwatch://tenant/acme'] }), map)).toBe(
      'research',
    );
    expect(tenantOfCertificate(cert({ commonName: 'x', subjectAltNames: ['DNS:agent.internal'] }), map)).toBe(
      'ops',
    );
    expect(
      tenantOfCertificate(cert({ commonName: 'x', subjectAltNames: ['DNS:agent2.internal'] }), map),
    ).toBe('infra');
    // Own keys only: a CN named like an Object.prototype member maps to nothing.
    expect(tenantOfCertificate(cert({ commonName: 'constructor' }), map)).toBe(undefined);
  });
});

describe('MtlsAuthenticator', () => {
  const fallback = new AnonymousAuthenticator(null);
  const auth = new MtlsAuthenticator(fallback, { clientTenants: {}, scopes: ['ingest'] });
  const acme = cert({ subjectAltNames: ['URI:trainwatch://tenant/acme'] });

  it('a verified certificate naming a tenant identifies the caller for its scopes', () => {
    const p = auth.authenticate({ authorization: undefined, peerCertificate: acme }, 'ingest');
    expect(p).toMatchObject({ tenant: 'acme', via: 'mtls:node-1' });
    expect(
      statusOf(() => auth.authenticate({ authorization: undefined, peerCertificate: acme }, 'read')),
    ).toBe(403);
    expect(
      statusOf(() =>
        auth.authenticate(
          { authorization: undefined, peerCertificate: acme, tenantHeader: 'other' },
          'ingest',
        ),
      ),
    ).toBe(403);
  });

  it('an unverified certificate or one naming no tenant gets 401; no certificate goes to the fallback', () => {
    expect(
      statusOf(() =>
        auth.authenticate(
          {
            authorization: undefined,
            peerCertificate: { ...acme, authorized: false, authorizationError: 'X' },
          },
          'ingest',
        ),
      ),
    ).toBe(401);
    expect(
      statusOf(() => auth.authenticate({ authorization: undefined, peerCertificate: cert({}) }, 'ingest')),
    ).toBe(401);
    // The fallback (anonymous access off here) decides requests without a certificate, and with a token.
    expect(statusOf(() => auth.authenticate({ authorization: undefined }, 'ingest'))).toBe(401);
    expect(
      statusOf(() => auth.authenticate({ authorization: 'Bearer x', peerCertificate: acme }, 'ingest')),
    ).toBe(401);
  });

  it('admin in client_scopes implies the others, as for tokens', () => {
    const admin = new MtlsAuthenticator(fallback, { clientTenants: {}, scopes: ['admin'] });
    expect(admin.authenticate({ authorization: undefined, peerCertificate: acme }, 'read').tenant).toBe(
      'acme',
    );
  });
});
