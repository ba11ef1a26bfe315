/**
 * Development PKI: one cluster CA and a certificate per process, ECDSA P-256. The caller's role is
 * a `urn:custody:role:<role>` URI SAN, so authorisation rests on what the CA signed, never on
 * anything the client sends.
 */
import { createPrivateKey, createPublicKey, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
// Must load before @peculiar/x509 (its tsyringe dependency checks for Reflect metadata).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { isRole, ROLE_URI_PREFIX, type Role } from './roles.js';

export type { Role } from './roles.js';

export interface Pem {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
}

const CA_FILE = 'ca';
const CA_YEARS = 10;
const LEAF_YEARS = 2;
// Reissue a leaf this long before it expires rather than fail at runtime.
const RENEW_BEFORE_MS = 30 * 24 * 3600_000;
const DEFAULT_HOSTS = ['localhost', '127.0.0.1'];

const ALG: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIG_ALG: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** Loads `<dir>/ca.crt` + `ca.key`, creating them on first use. */
export async function ensureCa(dir: string): Promise<Pem> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const existing = await readPair(dir, CA_FILE);
  if (existing === 'partial') {
    // Never silently replace half a CA: every certificate it signed would stop working.
    throw new Error(`incomplete CA in ${dir}: one of ca.crt / ca.key is missing; remove both to create a new CA`);
  }
  if (existing) {
    if (!keyMatchesCert(existing)) throw new Error(`ca.key in ${dir} does not belong to ca.crt`);
    return existing;
  }
  const keys = await generateKeys();
  const now = new Date();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: 'CN=custody development CA, O=custody',
    notBefore: backdate(now),
    notAfter: addYears(now, CA_YEARS),
    signingAlgorithm: SIG_ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pem = { certPem: cert.toString('pem'), keyPem: await exportKey(keys.privateKey) };
  await writePair(dir, CA_FILE, pem);
  return pem;
}

/**
 * Loads `<dir>/<name>.crt` + `.key`, issuing them from `ca` when missing, not signed by `ca`, close
 * to expiry, or lacking the role or a requested host.
 */
export async function ensureCert(dir: string, ca: Pem, name: string, role: Role, hosts: string[] = []): Promise<Pem> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name) || name === CA_FILE) {
    throw new Error(`invalid certificate name ${JSON.stringify(name)}`);
  }
  if (!isRole(role)) throw new Error(`unknown role ${JSON.stringify(role)}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const allHosts = [...new Set([...DEFAULT_HOSTS, ...hosts])];
  const existing = await readPair(dir, name);
  if (existing && existing !== 'partial' && isUsable(existing, ca, name, role, allHosts)) return existing;

  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importKey(ca.keyPem);
  const keys = await generateKeys();
  const now = new Date();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${name}`,
    issuer: caCert.subject,
    notBefore: backdate(now),
    notAfter: addYears(now, LEAF_YEARS),
    signingAlgorithm: SIG_ALG,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...allHosts.map((h) => ({ type: isIp(h) ? ('ip' as const) : ('dns' as const), value: h })),
        { type: 'url' as const, value: ROLE_URI_PREFIX + role },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pem = { certPem: cert.toString('pem'), keyPem: await exportKey(keys.privateKey) };
  await writePair(dir, name, pem);
  return pem;
}

/**
 * The role and subject (CN) of a peer certificate that TLS has already verified against the CA.
 * Undefined when there is no certificate, no role, an unknown role, or more than one role.
 */
export function roleFromPeerCertificate(cert: PeerCertificate | undefined): { role: Role; subject: string } | undefined {
  if (!cert || typeof cert.subjectaltname !== 'string') return undefined;
  // Node joins SAN entries with ", " and quotes any value containing a separator, so splitting is safe.
  const roles = cert.subjectaltname
    .split(', ')
    .filter((entry) => entry.startsWith('URI:' + ROLE_URI_PREFIX))
    .map((entry) => entry.slice(('URI:' + ROLE_URI_PREFIX).length));
  if (roles.length !== 1) return undefined;
  const role = roles[0]!;
  if (!isRole(role)) return undefined;
  const cn: unknown = cert.subject?.CN;
  const subject = typeof cn === 'string' ? cn : Array.isArray(cn) && typeof cn[0] === 'string' ? cn[0] : '';
  if (!subject) return undefined;
  return { role, subject };
}

/** Server credentials that require and verify a client certificate from the same CA (mutual TLS). */
export function serverCredentials(ca: Pem, own: Pem): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(
    Buffer.from(ca.certPem),
    [{ cert_chain: Buffer.from(own.certPem), private_key: Buffer.from(own.keyPem) }],
    true,
  );
}

/** Which server a client expects: its role and, where it matters, its certificate name. */
export interface ExpectedServer {
  role: Role;
  name?: string;
}

/**
 * Channel credentials that present `own` and trust only servers signed by `ca`. With `expect`, the
 * hostname check is replaced by a check of the server certificate's role and name: every cluster
 * certificate is valid for localhost, so the name on the wire proves nothing, while a payment
 * client's certificate must never pass for the coordinator (or one node for another).
 */
export function clientCredentials(ca: Pem, own: Pem, expect?: ExpectedServer): grpc.ChannelCredentials {
  const checkServerIdentity = expect
    ? (_host: string, cert: PeerCertificate): Error | undefined => {
        const id = roleFromPeerCertificate(cert);
        if (!id || id.role !== expect.role || (expect.name !== undefined && id.subject !== expect.name)) {
          return new Error(`server certificate is ${id ? `${id.role} ${id.subject}` : 'not a cluster certificate'}, expected ${expect.role}${expect.name ? ` ${expect.name}` : ''}`);
        }
        return undefined;
      }
    : undefined;
  return grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(own.keyPem), Buffer.from(own.certPem), checkServerIdentity ? { checkServerIdentity } : undefined);
}

/** Reads `<dir>/<name>.crt` and `<dir>/<name>.key`. */
export async function loadPem(dir: string, name: string): Promise<Pem> {
  const [certPem, keyPem] = await Promise.all([
    readFile(join(dir, `${name}.crt`), 'utf8'),
    readFile(join(dir, `${name}.key`), 'utf8'),
  ]);
  return { certPem, keyPem };
}

async function readPair(dir: string, name: string): Promise<Pem | 'partial' | undefined> {
  const [certPem, keyPem] = await Promise.all([
    readOptional(join(dir, `${name}.crt`)),
    readOptional(join(dir, `${name}.key`)),
  ]);
  if (certPem === undefined && keyPem === undefined) return undefined;
  if (certPem === undefined || keyPem === undefined) return 'partial';
  return { certPem, keyPem };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

// Key first, certificate last: a crash in between leaves a pair readPair reports as incomplete.
async function writePair(dir: string, name: string, pem: Pem): Promise<void> {
  await writeAtomic(join(dir, `${name}.key`), pem.keyPem, 0o600);
  await writeAtomic(join(dir, `${name}.crt`), pem.certPem, 0o644);
}

async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, data, { mode, flag: 'wx' });
  await rename(tmp, path);
}

function isUsable(pem: Pem, ca: Pem, name: string, role: Role, hosts: string[]): boolean {
  try {
    const cert = new NodeX509(pem.certPem);
    const caCert = new NodeX509(ca.certPem);
    if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) return false;
    if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return false;
    if (!keyMatchesCert(pem)) return false;
    const peer = { subject: { CN: name }, subjectaltname: cert.subjectAltName ?? '' } as unknown as PeerCertificate;
    if (roleFromPeerCertificate(peer)?.role !== role) return false;
    if (!cert.subject.split('\n').includes(`CN=${name}`)) return false;
    return hosts.every((h) => (isIp(h) ? cert.checkIP(h) !== undefined : cert.checkHost(h) !== undefined));
  } catch {
    return false;
  }
}

function keyMatchesCert(pem: Pem): boolean {
  const fromKey = createPublicKey(createPrivateKey(pem.keyPem)).export({ format: 'der', type: 'spki' });
  const fromCert = new NodeX509(pem.certPem).publicKey.export({ format: 'der', type: 'spki' });
  return fromKey.equals(fromCert);
}

async function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function exportKey(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importKey(pem: string): Promise<webcrypto.CryptoKey> {
  return webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), ALG, false, ['sign']);
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f; // positive INTEGER
  return Buffer.from(bytes).toString('hex');
}

function isIp(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');
}

function backdate(now: Date): Date {
  // Tolerates small clock skew between processes.
  return new Date(now.getTime() - 5 * 60_000);
}

function addYears(d: Date, years: number): Date {
  const r = new Date(d);
  r.setUTCFullYear(r.getUTCFullYear() + years);
  return r;
}
