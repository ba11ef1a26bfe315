/** Ethereum interoperability: threshold signatures on real transaction hashes, checked by ethers 6. */
import { Signature, Transaction, computeAddress, getBytes, hexlify, recoverAddress, type TransactionLike } from 'ethers';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EcdsaKeyShare } from '../../crypto/ecdsa/keygen.js';
import { groupFor } from '../../crypto/group/index.js';
import { keygenAllAsync, signAll } from './support/ecdsa-driver.js';

const g = groupFor('secp256k1');
const hex32 = (x: bigint) => '0x' + x.toString(16).padStart(64, '0');

describe('DKLs23 signatures on Ethereum transactions (ethers 6)', () => {
  let keys: Map<number, EcdsaKeyShare>;
  let publicKey: Uint8Array;
  let address: string;
  beforeAll(async () => {
    keys = await keygenAllAsync(3, 2);
    publicKey = keys.get(1)!.publicKey;
    address = computeAddress(hexlify(publicKey));
  }, 600_000);

  function signTx(fields: TransactionLike, signers: number[], tweak?: bigint): { tx: Transaction; from: string } {
    const tx = Transaction.from(fields);
    const digest = getBytes(tx.unsignedHash);
    const sig = signAll(keys, signers, digest, tweak === undefined ? {} : { tweak });
    tx.signature = Signature.from({ r: hex32(sig.r), s: hex32(sig.s), v: 27 + sig.recovery });
    const parsed = Transaction.from(tx.serialized);
    expect(recoverAddress(tx.unsignedHash, tx.signature!)).toBe(parsed.from);
    return { tx: parsed, from: parsed.from! };
  }

  it('EIP-1559 (type 2) transaction: parsed sender is the threshold address', () => {
    for (const signers of [
      [1, 2],
      [1, 3],
      [2, 3],
    ]) {
      const { tx, from } = signTx(
        {
          type: 2,
          chainId: 1n,
          nonce: 7,
          maxPriorityFeePerGas: 1_500_000_000n,
          maxFeePerGas: 30_000_000_000n,
          gasLimit: 21_000n,
          to: '0x000000000000000000000000000000000000dEaD',
          value: 10n ** 17n,
          data: '0x',
        },
        signers,
      );
      expect(from).toBe(address);
      expect(tx.type).toBe(2);
      expect(tx.signature!.yParity === 0 || tx.signature!.yParity === 1).toBe(true);
    }
  });

  it('legacy EIP-155 transaction (chain id in v): parsed sender is the threshold address', () => {
    const { tx, from } = signTx(
      {
        type: 0,
        chainId: 11155111n,
        nonce: 0,
        gasPrice: 20_000_000_000n,
        gasLimit: 60_000n,
        to: '0x1111111111111111111111111111111111111111',
        value: 1n,
        data: '0xa9059cbb',
      },
      [2, 3],
    );
    expect(from).toBe(address);
    expect(tx.type).toBe(0);
    expect(tx.chainId).toBe(11155111n);
    const v = tx.signature!.networkV;
    expect(v === 11155111n * 2n + 35n || v === 11155111n * 2n + 36n).toBe(true);
  });

  it('HD-tweaked key signs for its own address', () => {
    const tweak = 0x1234567890abcdefn;
    const derived = g.encode(g.add(g.decode(publicKey), g.baseMul(tweak)));
    const { from } = signTx(
      { type: 2, chainId: 8453n, nonce: 1, maxPriorityFeePerGas: 1n, maxFeePerGas: 2n, gasLimit: 21_000n, to: address, value: 0n },
      [1, 3],
      tweak,
    );
    expect(from).toBe(computeAddress(hexlify(derived)));
    expect(from).not.toBe(address);
  });
});
