/**
 * What a sign request asks for, as the policy sees it; the one function the coordinator and the
 * nodes both use, so they can never describe the same bytes differently.
 *
 *   no payload            -> a raw digest
 *   an Ethereum tx        -> its intent (native or ERC-20 transfer, transferFrom, approve); the
 *                            digest must be its signing hash
 *   a tx we cannot describe (another contract call) -> a raw digest: the policy's raw-digest
 *                            permission decides, as it would for any opaque 32 bytes
 * A payload that is not an unsigned transaction at all, or that does not hash to the digest, throws
 * EthTxError: that is malformed input, not a policy question.
 */
import type { PolicyDocument } from './document.js';
import { decodeUnsignedEthTx, EthTxError } from './eth-tx.js';
import { IntentError, intentOfEthTx, rawDigestIntent, type Intent } from './intent.js';

export function intentOfPayload(doc: PolicyDocument, payload: Uint8Array | null, digest: Uint8Array): Intent {
  if (!payload || payload.length === 0) return rawDigestIntent();
  const tx = decodeUnsignedEthTx(payload);
  if (tx.signingHash.length !== digest.length || tx.signingHash.some((b, i) => b !== digest[i])) {
    throw new EthTxError('the digest is not the signing hash of the transaction');
  }
  try {
    return intentOfEthTx(tx, doc);
  } catch (e) {
    if (e instanceof IntentError) return rawDigestIntent();
    throw e;
  }
}
