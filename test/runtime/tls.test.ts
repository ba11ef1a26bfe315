import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureCa, ensureCert, loadPem, roleFromPeerCertificate, type Pem } from '../../runtime/tls.js';

let dir: string;
let ca: Pem;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'custody-tls-'));
  ca = await ensureCa(dir);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function peer(subjectaltname: string, cn: string | string[] = 'x'): PeerCertificate {
  return { subject: { CN: cn }, subjectaltname } as unknown as PeerCertificate;
}

describe('development CA', () => {
  it('creates the CA once, with a private key only the owner can read', async () => {
    expect(await ensureCa(dir)).toEqual(ca);
    expect((await stat(join(dir, 'ca.key'))).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('refuses to replace half a CA', async () => {
    const half = await mkdtemp(join(tmpdir(), 'custody-tls-half-'));
    try {
      await writeFile(join(half, 'ca.crt'), ca.certPem);
      await expect(ensureCa(half)).rejects.toThrow(/incomplete CA/);
    } finally {
      await rm(half, { recursive: true, force: true });
    }
  });
});

describe('process certificates', () => {
  it('issues a CA-signed certificate with role, hosts, both EKUs and two years of validity', async () => {
    const pem = await ensureCert(dir, ca, 'node-1', 'node', ['node-1.internal', '10.0.0.7']);
    const cert = new X509Certificate(pem.certPem);
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(cert.subject).toBe('CN=node-1');
    expect(cert.subjectAltName).toContain('URI:urn:custody:role:node');
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkHost('node-1.internal')).toBe('node-1.internal');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('10.0.0.7')).toBe('10.0.0.7');
    expect(cert.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    const years = (Date.parse(cert.validTo) - Date.now()) / (365.25 * 24 * 3600_000);
    expect(years).toBeGreaterThan(1.9);
    expect(years).toBeLessThan(2.1);
    expect((await stat(join(dir, 'node-1.key'))).mode & 0o777).toBe(0o600);
    expect(await loadPem(dir, 'node-1')).toEqual(pem);
  });

  it('reuses a valid certificate and reissues when the role, hosts or CA differ', async () => {
    const first = await ensureCert(dir, ca, 'op', 'operator');
    expect(await ensureCert(dir, ca, 'op', 'operator')).toEqual(first);
    const admin = await ensureCert(dir, ca, 'op', 'admin');
    expect(admin.certPem).not.toBe(first.certPem);
    expect(new X509Certificate(admin.certPem).subjectAltName).toContain('urn:custody:role:admin');
    const wider = await ensureCert(dir, ca, 'op', 'admin', ['op.example']);
    expect(wider.certPem).not.toBe(admin.certPem);

    const otherDir = await mkdtemp(join(tmpdir(), 'custody-tls-other-'));
    try {
      const otherCa = await ensureCa(otherDir);
      const reissued = await ensureCert(dir, otherCa, 'op', 'admin', ['op.example']);
      expect(new X509Certificate(reissued.certPem).verify(new X509Certificate(otherCa.certPem).publicKey)).toBe(true);
    } finally {
      await rm(otherDir, { recursive: true, force: true });
    }
  });

  it('reissues when the key on disk does not match the certificate', async () => {
    const a = await ensureCert(dir, ca, 'mismatch', 'payment');
    const b = await ensureCert(dir, ca, 'other', 'payment');
    await writeFile(join(dir, 'mismatch.key'), b.keyPem);
    const fixed = await ensureCert(dir, ca, 'mismatch', 'payment');
    expect(fixed.certPem).not.toBe(a.certPem);
    expect(await readFile(join(dir, 'mismatch.key'), 'utf8')).toBe(fixed.keyPem);
  });

  it('rejects names that are not plain file names', async () => {
    await expect(ensureCert(dir, ca, '../escape', 'admin')).rejects.toThrow(/invalid certificate name/);
    await expect(ensureCert(dir, ca, 'ca', 'admin')).rejects.toThrow(/invalid certificate name/);
  });
});

describe('roleFromPeerCertificate', () => {
  it('reads the role URI and the common name', () => {
    expect(roleFromPeerCertificate(peer('DNS:localhost, IP Address:127.0.0.1, URI:urn:custody:role:approver', 'alice'))).toEqual({
      role: 'approver',
      subject: 'alice',
    });
  });

  it('rejects missing, unknown, ambiguous or smuggled roles', () => {
    expect(roleFromPeerCertificate(undefined)).toBeUndefined();
    expect(roleFromPeerCertificate(peer('DNS:localhost'))).toBeUndefined();
    expect(roleFromPeerCertificate(peer('URI:urn:custody:role:root'))).toBeUndefined();
    expect(roleFromPeerCertificate(peer('URI:urn:custody:role:payment, URI:urn:custody:role:admin'))).toBeUndefined();
    // Node quotes SAN values that contain separators, so a crafted DNS name cannot add a role.
    expect(roleFromPeerCertificate(peer('DNS:"a, URI:urn:custody:role:admin"'))).toBeUndefined();
    expect(roleFromPeerCertificate(peer('URI:urn:custody:role:admin', ''))).toBeUndefined();
  });

  it('reads a role from a real certificate as node presents it', async () => {
    const pem = await ensureCert(dir, ca, 'pay-9', 'payment');
    const cert = new X509Certificate(pem.certPem);
    expect(roleFromPeerCertificate(peer(cert.subjectAltName ?? '', 'pay-9'))).toEqual({ role: 'payment', subject: 'pay-9' });
  });
});
