/**
 * A throwaway PKI for the TLS tests, made at test time with the `openssl` command (P-256 keys, one day):
 * certificate authorities, a server certificate for localhost/127.0.0.1 and client certificates with the
 * subject alternative names the mTLS authenticator reads.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Issued {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** SHA-256 fingerprint as Node writes it (colon-separated upper-case hex). */
  readonly fingerprint256: string;
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function issued(certFile: string, keyFile: string): Issued {
  const cert = readFileSync(certFile);
  return {
    certFile,
    keyFile,
    cert,
    key: readFileSync(keyFile),
    fingerprint256: new X509Certificate(cert).fingerprint256,
  };
}

export class TestCa {
  private constructor(
    readonly dir: string,
    readonly name: string,
    readonly ca: Issued,
  ) {}

  static create(dir: string, name: string): TestCa {
    const keyFile = path.join(dir, `${name}.key`);
    const certFile = path.join(dir, `${name}.crt`);
    openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return new TestCa(dir, name, issued(certFile, keyFile));
  }

  /** A leaf certificate signed by this CA; `file` names its files (written again when called again). */
  issue(file: string, opts: { cn: string; san?: string[]; usage: 'server' | 'client' }): Issued {
    const keyFile = path.join(this.dir, `${file}.key`);
    const certFile = path.join(this.dir, `${file}.crt`);
    const csr = path.join(this.dir, `${file}.csr`);
    const ext = path.join(this.dir, `${file}.ext`);
    openssl([
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      csr,
      '-subj',
      `/CN=${opts.cn}`,
    ]);
    writeFileSync(
      ext,
      [
        'basicConstraints=CA:FALSE',
        `extendedKeyUsage=${opts.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
        ...(opts.san?.length ? [`subjectAltName=${opts.san.join(',')}`] : []),
      ].join('\n'),
    );
    openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      this.ca.certFile,
      '-CAkey',
      this.ca.keyFile,
      '-CAcreateserial',
      '-out',
      certFile,
      '-days',
      '1',
      '-extfile',
      ext,
    ]);
    return issued(certFile, keyFile);
  }
}
