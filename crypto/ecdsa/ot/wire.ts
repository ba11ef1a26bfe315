/**
 * Wire constants of the DKLs23 two-party layer. Every message and stored setup starts with
 * [format version, type]; all sizes are fixed by the version, so decoders check exact lengths.
 */
export const WIRE_VERSION = 1;

export const MSG_BASE_OT_RECEIVER = 0x01; // setup flight 1: base-OT receiver (Alice) -> sender (Bob)
export const MSG_BASE_OT_SENDER = 0x02; // setup flight 2: base-OT sender (Bob) -> receiver (Alice)
export const MSG_MUL_ROUND1 = 0x03; // Bob -> Alice: OT-extension matrix and check values
export const MSG_MUL_ROUND2 = 0x04; // Alice -> Bob: corrections, eta, H(mu)
export const STORE_SENDER_SETUP = 0x10;
export const STORE_RECEIVER_SETUP = 0x11;
export const STORE_RECEIVER_STATE = 0x12;

/** Compressed secp256k1 point and canonical scalar sizes. */
export const POINT_BYTES = 33;
export const SCALAR_BYTES = 32;
