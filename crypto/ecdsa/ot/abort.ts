/**
 * The one error the DKLs23 two-party layer throws for a counterparty's fault.
 *
 * `reason` tells the caller what to do: 'malformed' is a broken or truncated message (reject the
 * message), 'ot-check-failed' and 'mul-check-failed' are failed consistency checks (ban the
 * counterparty for the keyset: retrying after such an abort leaks secret bits, PROTOCOLS.md).
 * Messages name the check, never a secret value, so they are safe to log.
 */
export type MulAbortReason = 'malformed' | 'ot-check-failed' | 'mul-check-failed';

export class MulAbort extends Error {
  override readonly name = 'MulAbort';
  constructor(
    readonly reason: MulAbortReason,
    message: string,
  ) {
    super(message);
  }
}
