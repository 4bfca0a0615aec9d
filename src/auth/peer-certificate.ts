/**
 * The TLS client certificate of a request's connection, as the authenticators read it (src/auth/mtls.ts):
 * whether it was verified, its subject CN and subject alternative names.
 */

/** What the authenticators read of a TLS client certificate. */
export interface PeerCertificate {
  /** True when the certificate chains to the configured client CA bundle (Node's `socket.authorized`). */
  readonly authorized: boolean;
  /** Why it does not, when it does not (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE). */
  readonly authorizationError?: string | undefined;
  /** The subject's common name, if any. */
  readonly commonName?: string | undefined;
  /** Subject alternative names as Node writes them: `URI:spiffe://…`, `DNS:agent-1`, `IP Address:10.0.0.1`. */
  readonly subjectAltNames: readonly string[];
  /** SHA-256 fingerprint, colon-separated hex (logs). */
  readonly fingerprint256: string;
}

/** The part of a `tls.TLSSocket` read here (any socket: plain ones have no `encrypted`). */
export interface TlsSocketLike {
  readonly encrypted?: boolean;
  readonly authorized?: boolean;
  readonly authorizationError?: Error | string | null;
  getPeerCertificate?(): {
    subject?: Record<string, string | string[]>;
    subjectaltname?: string;
    fingerprint256?: string;
  } | null;
}

// One parse per connection, not per request: an agent sends every batch over the same connection.
const peerCertificates = new WeakMap<object, PeerCertificate | null>();

/** The client certificate of `socket`, parsed once per connection; undefined without TLS or certificate. */
export function peerCertificateOf(socket: TlsSocketLike | undefined): PeerCertificate | undefined {
  if (!socket?.encrypted || typeof socket.getPeerCertificate !== 'function') return undefined;
  const known = peerCertificates.get(socket);
  if (known !== undefined) return known ?? undefined;
  const raw = socket.getPeerCertificate();
  let cert: PeerCertificate | null = null;
  if (raw?.fingerprint256) {
    const cn = raw.subject?.CN;
    cert = {
      authorized: socket.authorized === true,
      authorizationError: socket.authorizationError == null ? undefined : String(socket.authorizationError),
      commonName: Array.isArray(cn) ? cn[0] : cn,
      subjectAltNames: splitSubjectAltNames(raw.subjectaltname ?? ''),
      fingerprint256: raw.fingerprint256,
    };
  }
  peerCertificates.set(socket, cert);
  return cert ?? undefined;
}

/**
 * Node's `subjectaltname` string (`DNS:a, URI:spiffe://x/y`): entries are separated by ", ", and an entry
 * whose value holds a comma or a quote is written as a JSON string (`URI:"a,b"`).
 */
export function splitSubjectAltNames(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const kind = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        value = text.slice(colon + 2, j);
      }
      next = text.indexOf(', ', j);
    } else {
      next = text.indexOf(', ', colon);
      value = text.slice(colon + 1, next < 0 ? text.length : next);
    }
    out.push(`${kind}:${value}`);
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}
