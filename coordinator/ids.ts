/** Ids in requests are UUIDs; anything else is refused before it reaches the database. */
import { status } from '@grpc/grpc-js';
import { RpcError } from '../runtime/grpc.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function checkUuid(what: string, id: string): void {
  if (!UUID.test(id)) throw new RpcError(status.INVALID_ARGUMENT, `${what} must be a UUID, got ${JSON.stringify(id.slice(0, 64))}`);
}
