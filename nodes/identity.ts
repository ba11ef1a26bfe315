/** The node's long-term identity keys, created once and sealed with its shares. */
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { generateIdentity, type IdentityKeys } from '../crypto/peer-box.js';
import type { ShareStore } from './store/share-store.js';

const RECORD = 'identity';

export async function loadOrCreateIdentity(store: ShareStore): Promise<IdentityKeys> {
  const existing = await store.get(RECORD);
  if (existing) {
    const j = JSON.parse(new TextDecoder().decode(existing)) as Record<keyof IdentityKeys, string>;
    return {
      encryptionSecret: hexToBytes(j.encryptionSecret),
      encryptionPublic: hexToBytes(j.encryptionPublic),
      signingSecret: hexToBytes(j.signingSecret),
      signingPublic: hexToBytes(j.signingPublic),
    };
  }
  const id = generateIdentity();
  const j: Record<keyof IdentityKeys, string> = {
    encryptionSecret: bytesToHex(id.encryptionSecret),
    encryptionPublic: bytesToHex(id.encryptionPublic),
    signingSecret: bytesToHex(id.signingSecret),
    signingPublic: bytesToHex(id.signingPublic),
  };
  await store.put(RECORD, new TextEncoder().encode(JSON.stringify(j)));
  return id;
}
