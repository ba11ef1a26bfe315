/**
 * `custody keyset import`: the operator's import ceremony for a legacy key or a BIP-39 mnemonic.
 *
 * The whole key exists only here, in this process, for the moment it takes to split it: the
 * mnemonic (and passphrase) become the account key at a hardened path (the hardened steps can
 * only happen here, before the split), the account key is dealt into Shamir shares with Feldman
 * commitments, each share is sealed to its node's X25519 identity key from the operator's own
 * roster.json (not from the coordinator), and only commitments and sealed boxes leave. Nothing is
 * written to disk; buffers holding secrets are zeroed as soon as they are used.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { sha512 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { HDKey } from '@scure/bip32';
import { mnemonicToSeedSync, validateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { deal } from '../crypto/dealer.js';
import { groupFor } from '../crypto/group/index.js';
import { generateIdentity, sealToPeer } from '../crypto/peer-box.js';
import { curveOfScheme, type Scheme } from '../crypto/schemes.js';
import { parseRoster, type RosterFile } from '../nodes/roster.js';
import { IMPORT_DEALER } from '../nodes/key-import.js';
import { schemeToProto } from '../proto/convert.js';
import { KeysetService } from '../proto/gen/custody/v1/api_pb.js';
import { CliError, connect } from './client.js';
import { layout } from './layout.js';

export interface ImportOptions {
  dir: string;
  role: string;
  scheme: Scheme;
  /** A file with the BIP-39 mnemonic (secp256k1 schemes). */
  mnemonicFile?: string;
  passphraseFile?: string;
  /** Hardened (or any) BIP-32 path applied to the mnemonic's master key before the split. */
  path: string;
  /** A file with a 32-byte private key in hex (secp256k1 scalar, or an RFC 8032 Ed25519 seed). */
  privateKeyFile?: string;
  /** Chain code for a raw private key (hex); random when absent. */
  chainCode?: string;
  threshold: number;
  nodeIds?: string[];
  label: string;
}

async function readSecretFile(file: string, what: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    throw new CliError(`cannot read the ${what} file ${file}`, 'INVALID_ARGUMENT');
  }
}

/** The account secret and chain code, and a description for the audit record (never secret). */
async function accountKey(o: ImportOptions): Promise<{ secret: bigint; chainCode: Uint8Array; source: string }> {
  const g = groupFor(curveOfScheme(o.scheme));
  if (o.mnemonicFile) {
    if (o.scheme === 'ed25519') throw new CliError('ed25519 keys import from --private-key-file (an RFC 8032 seed); BIP-32 mnemonics are secp256k1', 'INVALID_ARGUMENT');
    const mnemonic = (await readSecretFile(o.mnemonicFile, 'mnemonic')).normalize('NFKD').split(/\s+/).join(' ');
    if (!validateMnemonic(mnemonic, wordlist)) throw new CliError('the mnemonic is not a valid English BIP-39 phrase (check the words and their count)', 'INVALID_ARGUMENT');
    const passphrase = o.passphraseFile ? await readSecretFile(o.passphraseFile, 'passphrase') : '';
    const seed = mnemonicToSeedSync(mnemonic, passphrase);
    let account: HDKey;
    try {
      account = HDKey.fromMasterSeed(seed).derive(o.path);
    } catch (e) {
      throw new CliError(`cannot derive ${o.path}: ${e instanceof Error ? e.message : String(e)}`, 'INVALID_ARGUMENT');
    } finally {
      seed.fill(0);
    }
    const secret = BigInt('0x' + bytesToHex(account.privateKey!));
    const chainCode = account.chainCode!.slice();
    account.wipePrivateData();
    return { secret, chainCode, source: `bip39 mnemonic${o.passphraseFile ? ' with passphrase' : ''} at ${o.path}` };
  }
  if (!o.privateKeyFile) throw new CliError('give --mnemonic-file FILE or --private-key-file FILE', 'INVALID_ARGUMENT');
  const hex = (await readSecretFile(o.privateKeyFile, 'private key')).replace(/^0x/, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new CliError('the private key file must hold 32 bytes in hex', 'INVALID_ARGUMENT');
  const raw = hexToBytes(hex);
  let secret: bigint;
  if (o.scheme === 'ed25519') {
    // RFC 8032 section 5.1.5: the signing scalar is the clamped first half of SHA-512(seed).
    const h = sha512(raw);
    const a = h.slice(0, 32);
    a[0]! &= 248;
    a[31]! &= 127;
    a[31]! |= 64;
    secret = g.Fn.create(BigInt('0x' + bytesToHex(a.reverse())));
    h.fill(0);
    a.fill(0);
  } else {
    secret = BigInt('0x' + hex);
    if (secret === 0n || secret >= g.order) throw new CliError('the private key is not a valid secp256k1 scalar', 'INVALID_ARGUMENT');
  }
  raw.fill(0);
  const chainCode = o.chainCode ? hexToBytes(o.chainCode.replace(/^0x/, '')) : randomBytes(32);
  if (chainCode.length !== 32) throw new CliError('--chain-code must be 32 bytes in hex', 'INVALID_ARGUMENT');
  return { secret, chainCode, source: 'private key' };
}

export async function importCeremony(o: ImportOptions) {
  const L = layout(o.dir);
  let roster;
  try {
    roster = parseRoster(JSON.parse(await readFile(L.roster, 'utf8')) as RosterFile);
  } catch {
    throw new CliError(`cannot read the roster ${L.roster}: the import seals each share to the node keys pinned there`);
  }
  const nodeIds = o.nodeIds?.length ? o.nodeIds : [...roster.nodes.keys()];
  for (const id of nodeIds) if (!roster.nodes.has(id)) throw new CliError(`node ${id} is not in the roster ${L.roster}`, 'INVALID_ARGUMENT');
  const g = groupFor(curveOfScheme(o.scheme));
  const keysetId = randomUUID();
  const { secret, chainCode, source } = await accountKey(o);
  const participants = nodeIds.map((_, i) => i + 1);
  const dealing = deal(g, secret, o.threshold, participants);
  const expected = g.encode(g.baseMul(secret));
  const dealer = generateIdentity();
  const sealedShares = nodeIds.map((nodeId, i) => {
    const plaintext = g.scalarToBytes(dealing.shares.get(i + 1)!);
    try {
      return sealToPeer({
        sender: dealer,
        receiverPublic: roster.nodes.get(nodeId)!.encryptionKey,
        context: { sessionId: keysetId, round: 0, from: IMPORT_DEALER, to: nodeId },
        plaintext,
      });
    } finally {
      plaintext.fill(0);
    }
  });
  dealing.shares.clear();
  dealer.encryptionSecret.fill(0);
  dealer.signingSecret.fill(0);

  const c = await connect(KeysetService, o.dir, o.role);
  const res = await c.importKeyset(
    {
      keysetId,
      scheme: schemeToProto(o.scheme),
      threshold: o.threshold,
      nodeIds,
      label: o.label,
      commitments: dealing.commitments,
      chainCode,
      dealerKey: dealer.encryptionPublic,
      sealedShares,
      source,
    },
    { deadlineMs: 180_000 },
  );
  const keyset = res.keyset!;
  const shown = o.scheme === 'bip340' ? expected.slice(1) : expected;
  // The ceremony knows the key it split: the cluster must report exactly that key.
  if (bytesToHex(keyset.publicKey) !== bytesToHex(shown)) {
    throw new CliError(`the cluster reports key ${bytesToHex(keyset.publicKey)}, the ceremony split ${bytesToHex(shown)}: do not use keyset ${keyset.keysetId}`, 'DATA_LOSS');
  }
  return { keyset, source };
}
