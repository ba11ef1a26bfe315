/**
 * Disaster recovery (docs/key-import.md): `custody recovery keygen`, `custody keyset export-recovery`,
 * and the offline `custody recovery reconstruct`, which opens t sealed shares with the recovery key,
 * rebuilds the key, checks it against the keyset's public key and writes it to a 0600 file. The key
 * is never printed.
 */
import { writeFile } from 'node:fs/promises';
import { x25519 } from '@noble/curves/ed25519.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { HDKey } from '@scure/bip32';
import { groupFor } from '../crypto/group/index.js';
import { openFromPeer, PeerBoxError } from '../crypto/peer-box.js';
import { curveOfScheme, isScheme, type Scheme } from '../crypto/schemes.js';
import { interpolateAtZero } from '../crypto/shamir.js';
import type { RosterFile } from '../nodes/roster.js';
import { RECOVERY_RECEIVER } from '../nodes/recovery-export.js';
import { schemeFromProto } from '../proto/convert.js';
import { KeysetService } from '../proto/gen/custody/v1/api_pb.js';
import { CliError, connect } from './client.js';
import { readJsonFile, writeNewFile } from './files.js';
import { layout } from './layout.js';

type Flags = Record<string, string | boolean | undefined>;
type Result = { out: unknown; text: string; exitCode?: number };

interface Bundle {
  format: 'custody-recovery-bundle/v1';
  keysetId: string;
  scheme: Scheme;
  threshold: number;
  publicKey: string;
  xpub: string;
  chainCode: string;
  members: { index: number; nodeId: string; verifyingShare: string }[];
  shares: { index: number; nodeId: string; nodeKey: string; sealedShare: string }[];
}

const str = (v: string | boolean | undefined) => (typeof v === 'string' ? v : '');

export async function exportRecoveryCommand(keysetId: string, flags: Flags, dir: string, role: string): Promise<Result> {
  const out = str(flags.out);
  if (!out) throw new CliError('--out FILE is required: where to write the recovery bundle (sealed shares)', 'INVALID_ARGUMENT');
  const c = await connect(KeysetService, dir, role);
  const res = await c.exportRecovery({ keysetId }, { deadlineMs: 60_000 });
  const k = res.keyset!;
  const bundle: Bundle = {
    format: 'custody-recovery-bundle/v1',
    keysetId: k.keysetId,
    scheme: schemeFromProto(k.scheme) as Scheme,
    threshold: k.threshold,
    publicKey: bytesToHex(k.publicKey),
    xpub: k.extendedPublicKey,
    chainCode: bytesToHex(k.chainCode),
    members: k.members.map((m) => ({ index: m.index, nodeId: m.nodeId, verifyingShare: bytesToHex(m.verifyingShare) })),
    shares: res.shares.map((s) => ({ index: s.index, nodeId: s.nodeId, nodeKey: bytesToHex(s.nodeKey), sealedShare: bytesToHex(s.sealedShare) })),
  };
  await writeNewFile(out, JSON.stringify(bundle, null, 2) + '\n');
  const summary = { keysetId: k.keysetId, bundle: out, shares: bundle.shares.map((s) => s.nodeId), refused: res.refused };
  return { out: summary, text: `recovery bundle for ${k.keysetId} written to ${out} (${bundle.shares.length} sealed shares; refused: ${res.refused.join('; ') || 'none'})` };
}

export async function recoveryCommand(sub: string | undefined, flags: Flags, dir: string): Promise<Result> {
  if (sub === 'keygen') {
    const out = str(flags.out);
    if (!out) throw new CliError('--out FILE is required: where to keep the recovery secret key (offline)', 'INVALID_ARGUMENT');
    const secretKey = x25519.utils.randomSecretKey();
    const publicKey = x25519.getPublicKey(secretKey);
    await writeNewFile(out, JSON.stringify({ format: 'custody-recovery-key/v1', secretKey: bytesToHex(secretKey), publicKey: bytesToHex(publicKey) }) + '\n');
    secretKey.fill(0);
    if (flags.install === true) {
      // Local clusters: pin it in the roster the nodes read (production: every node's operator does this).
      const L = layout(dir);
      const roster = await readJsonFile<RosterFile>(L.roster, 'roster');
      roster.recovery = { encryptionKey: bytesToHex(publicKey) };
      await writeFile(L.roster, JSON.stringify(roster, null, 2) + '\n');
    }
    const next = `add "recovery": {"encryptionKey": "${bytesToHex(publicKey)}"} to roster.json on every node`;
    return { out: { publicKey: bytesToHex(publicKey), file: out, installed: flags.install === true, next }, text: `recovery key written to ${out}\n  public key ${bytesToHex(publicKey)}\n  next: ${flags.install === true ? 'installed in this cluster\'s roster' : next}` };
  }
  if (sub === 'reconstruct') return reconstruct(flags);
  throw new CliError('usage: custody recovery keygen --out FILE [--install] | reconstruct --bundle FILE --key FILE --out FILE', 'INVALID_ARGUMENT');
}

async function reconstruct(flags: Flags): Promise<Result> {
  const bundleFile = str(flags.bundle);
  const keyFile = str(flags.key);
  const out = str(flags.out);
  if (!bundleFile || !keyFile || !out) throw new CliError('usage: custody recovery reconstruct --bundle FILE --key FILE --out FILE', 'INVALID_ARGUMENT');
  const bundle = await readJsonFile<Bundle>(bundleFile, 'recovery bundle');
  if (bundle.format !== 'custody-recovery-bundle/v1' || !isScheme(bundle.scheme)) throw new CliError(`${bundleFile} is not a custody recovery bundle`, 'INVALID_ARGUMENT');
  const key = await readJsonFile<{ secretKey: string; publicKey: string }>(keyFile, 'recovery key');
  const receiver = { encryptionSecret: hexToBytes(key.secretKey), encryptionPublic: hexToBytes(key.publicKey), signingSecret: new Uint8Array(32), signingPublic: new Uint8Array(32) };
  const g = groupFor(curveOfScheme(bundle.scheme));
  const verifying = new Map(bundle.members.map((m) => [m.index, hexToBytes(m.verifyingShare)]));
  const shares = new Map<number, bigint>();
  const problems: string[] = [];
  for (const s of bundle.shares) {
    try {
      const opened = openFromPeer({ receiver, senderPublic: hexToBytes(s.nodeKey), context: { sessionId: bundle.keysetId, round: 0, from: s.nodeId, to: RECOVERY_RECEIVER }, box: hexToBytes(s.sealedShare) });
      const share = g.scalarFromBytes(opened);
      opened.fill(0);
      // Each share must match the verifying share the keyset published for its index.
      if (!g.eq(g.baseMul(share), g.decode(verifying.get(s.index)!))) problems.push(`${s.nodeId}: share does not match its verifying share`);
      else shares.set(s.index, share);
    } catch (e) {
      problems.push(`${s.nodeId}: ${e instanceof PeerBoxError ? 'box does not open with this recovery key' : e instanceof Error ? e.message : String(e)}`);
    }
  }
  receiver.encryptionSecret.fill(0);
  if (shares.size < bundle.threshold) throw new CliError(`only ${shares.size} of the ${bundle.threshold} shares needed are usable: ${problems.join('; ')}`, 'FAILED_PRECONDITION');
  const usable = new Map([...shares].slice(0, bundle.threshold));
  const secret = interpolateAtZero(g.Fn, usable);
  const groupKey = bundle.xpub ? HDKey.fromExtendedKey(bundle.xpub).publicKey! : hexToBytes(bundle.publicKey);
  if (!g.eq(g.baseMul(secret), g.decode(groupKey))) throw new CliError('the reconstructed key does not match the keyset public key', 'DATA_LOSS');
  const privateKey = g.scalarToBytes(secret);
  const record: Record<string, string> = {
    format: 'custody-recovered-key/v1',
    keysetId: bundle.keysetId,
    scheme: bundle.scheme,
    publicKey: bundle.publicKey,
    chainCode: bundle.chainCode,
    // secp256k1: 32-byte big-endian scalar; Ed25519: the 32-byte little-endian signing scalar (not an RFC 8032 seed).
    privateKey: bytesToHex(privateKey),
  };
  if (bundle.scheme !== 'ed25519') record.xprv = new HDKey({ privateKey, chainCode: hexToBytes(bundle.chainCode) }).privateExtendedKey;
  privateKey.fill(0);
  await writeNewFile(out, JSON.stringify(record, null, 2) + '\n');
  const summary = { keysetId: bundle.keysetId, scheme: bundle.scheme, publicKey: bundle.publicKey, verified: true, sharesUsed: [...usable.keys()], keyFile: out, problems };
  return { out: summary, text: `key of ${bundle.keysetId} reconstructed from shares ${[...usable.keys()].join(', ')}, verified against its public key, written to ${out}` };
}
