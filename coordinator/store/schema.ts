/**
 * Versioned, idempotent migrations.
 *
 * `schema_migrations` records each applied version with a SHA-256 checksum of the statements that
 * ran; a changed migration that was already applied is refused at start (edit by adding a new
 * version, never by rewriting an old one). Versions the code does not know (a newer coordinator
 * migrated the database during a rolling upgrade) are left alone.
 *
 * Several coordinators may start at once. Without advisory locks, each version is applied in a
 * transaction that first updates the single row of `schema_migrations_lock`: concurrent migrators
 * queue on that row, and under SERIALIZABLE the losers fail with 40001, retry, and then see the
 * version already applied.
 *
 * Portable SQL only (CockroachDB, PostgreSQL, PGlite): UUID keys from gen_random_uuid(), TIMESTAMPTZ,
 * JSONB, BYTEA, no SERIAL or sequences, every table with a primary key. Dialect-specific DDL (hash-
 * sharded indexes on CockroachDB, to spread monotonically increasing keys over ranges) is chosen per
 * dialect; the checksum covers the dialect's own statements.
 */
import { createHash } from 'node:crypto';
import type { Db, Dialect, Queryable } from './db.js';

export interface Migration {
  version: number;
  name: string;
  statements: (dialect: Dialect) => string[];
}

export const SCHEMES = ['ed25519', 'secp256k1', 'bip340', 'ecdsa'] as const;
export const SIGN_STATUSES = [
  'received',
  'policy_checked',
  'awaiting_approvals',
  'signing',
  'signed',
  'rejected',
  'failed',
  'expired',
] as const;

const sqlList = (values: readonly string[]): string => values.map((v) => `'${v}'`).join(', ');

/** An index on a column that grows with time: hash-sharded on CockroachDB to avoid a hot range. */
const timeIndex = (dialect: Dialect, name: string, table: string, columns: string): string =>
  `CREATE INDEX IF NOT EXISTS ${name} ON ${table} (${columns})${dialect === 'cockroach' ? ' USING HASH' : ''}`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'keysets, sign requests, node faults, audit log',
    statements: (dialect) => [
      `CREATE TABLE IF NOT EXISTS keysets (
        keyset_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        scheme TEXT NOT NULL CHECK (scheme IN (${sqlList(SCHEMES)})),
        public_key BYTEA NOT NULL,
        threshold INT NOT NULL CHECK (threshold >= 1),
        chain_code BYTEA NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`,
      timeIndex(dialect, 'keysets_created_idx', 'keysets', 'created_at, keyset_id'),
      `CREATE TABLE IF NOT EXISTS keyset_members (
        keyset_id UUID NOT NULL REFERENCES keysets (keyset_id),
        party_index INT NOT NULL CHECK (party_index >= 1),
        node_id TEXT NOT NULL,
        verifying_share BYTEA NOT NULL,
        PRIMARY KEY (keyset_id, party_index),
        CONSTRAINT keyset_members_node_uq UNIQUE (keyset_id, node_id)
      )`,
      `CREATE TABLE IF NOT EXISTS sign_requests (
        request_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        keyset_id UUID NOT NULL REFERENCES keysets (keyset_id),
        scheme TEXT NOT NULL CHECK (scheme IN (${sqlList(SCHEMES)})),
        digest BYTEA NOT NULL,
        idempotency_key TEXT NULL,
        request_hash BYTEA NOT NULL,
        status TEXT NOT NULL CHECK (status IN (${sqlList(SIGN_STATUSES)})),
        signature BYTEA NULL,
        public_key BYTEA NULL,
        signers JSONB NOT NULL DEFAULT '[]',
        error TEXT NULL,
        attempts INT NOT NULL DEFAULT 0,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        created_by TEXT NOT NULL
      )`,
      // NULL keys do not collide: requests without an idempotency key are unconstrained.
      `CREATE UNIQUE INDEX IF NOT EXISTS sign_requests_idempotency_key_uq ON sign_requests (idempotency_key)`,
      // A restarted coordinator resumes unfinished requests by status.
      `CREATE INDEX IF NOT EXISTS sign_requests_status_idx ON sign_requests (status, updated_at)`,
      `CREATE TABLE IF NOT EXISTS node_faults (
        fault_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        node_id TEXT NOT NULL,
        keyset_id UUID NULL,
        request_id UUID NULL,
        reason TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`,
      `CREATE INDEX IF NOT EXISTS node_faults_node_idx ON node_faults (node_id, at)`,
      // seq is assigned by the appender (head + 1), not a sequence: the chain needs gap-free numbers.
      `CREATE TABLE IF NOT EXISTS audit_log (
        seq INT8 PRIMARY KEY CHECK (seq >= 1),
        at TIMESTAMPTZ NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        details JSONB NOT NULL,
        prev_hash BYTEA NOT NULL,
        hash BYTEA NOT NULL
      )`,
    ],
  },
  {
    version: 2,
    name: 'request pipeline: source, client, lease, results outbox',
    statements: () => [
      // Where a request came from and who gets its result (NATS results subject per client).
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS source TEXT NOT NULL DEFAULT 'grpc'`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS client_id TEXT NOT NULL DEFAULT ''`,
      // The coordinator working on a request and until when; an expired lease lets another resume it.
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS owner TEXT NULL`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS lease_until TIMESTAMPTZ NULL`,
      // Outbox: a finished NATS request's result is published after the commit, then marked.
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS result_published BOOLEAN NOT NULL DEFAULT false`,
      `CREATE INDEX IF NOT EXISTS sign_requests_outbox_idx ON sign_requests (source, result_published, status)`,
    ],
  },
  {
    version: 3,
    name: 'keyset bans (DKLs23 OT / multiplication check failures)',
    statements: () => [
      // A node that failed an OT or multiplication check is left out of that keyset's quorums until
      // an operator acts: retrying with it would let it run a selective-abort attack on the key.
      `CREATE TABLE IF NOT EXISTS keyset_bans (
        keyset_id UUID NOT NULL REFERENCES keysets (keyset_id),
        node_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        request_id UUID NULL,
        at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (keyset_id, node_id)
      )`,
    ],
  },
  {
    version: 4,
    name: 'HD wallets: batches, wallets, wallet sign requests',
    statements: () => [
      // Wallet indexes are handed out per keyset, a whole batch's range at once.
      `ALTER TABLE keysets ADD COLUMN IF NOT EXISTS next_wallet_index INT8 NOT NULL DEFAULT 0`,
      `CREATE TABLE IF NOT EXISTS wallet_batches (
        batch_id UUID PRIMARY KEY,
        keyset_id UUID NOT NULL REFERENCES keysets (keyset_id),
        first_index INT8 NOT NULL CHECK (first_index >= 0),
        count INT NOT NULL CHECK (count >= 1),
        created INT NOT NULL DEFAULT 0,
        label TEXT NOT NULL DEFAULT '',
        user_id TEXT NOT NULL DEFAULT '',
        purpose TEXT NOT NULL DEFAULT '',
        idempotency_key TEXT NULL,
        request_hash BYTEA NOT NULL,
        created_by TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        completed_at TIMESTAMPTZ NULL
      )`,
      `CREATE UNIQUE INDEX IF NOT EXISTS wallet_batches_idempotency_key_uq ON wallet_batches (idempotency_key)`,
      // No foreign keys here on purpose: a batch inserts up to a million rows and per-row FK checks
      // would double the cost; only the coordinator writes this table, from a batch it just read.
      // A batch's wallets are the index range [first_index, first_index + count) of its keyset, so
      // the (keyset_id, wallet_index) index serves listing by batch as well.
      `CREATE TABLE IF NOT EXISTS wallets (
        wallet_id UUID PRIMARY KEY,
        keyset_id UUID NOT NULL,
        wallet_index INT8 NOT NULL CHECK (wallet_index >= 0),
        path TEXT NOT NULL,
        public_key BYTEA NOT NULL,
        eth_address TEXT NULL,
        btc_p2wpkh TEXT NULL,
        btc_p2tr TEXT NULL,
        sol_address TEXT NULL,
        label TEXT NOT NULL DEFAULT '',
        user_id TEXT NOT NULL DEFAULT '',
        purpose TEXT NOT NULL DEFAULT '',
        batch_id UUID NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        CONSTRAINT wallets_keyset_index_uq UNIQUE (keyset_id, wallet_index)
      )`,
      `CREATE INDEX IF NOT EXISTS wallets_user_idx ON wallets (user_id, keyset_id, wallet_index)`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS wallet_id UUID NULL`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS derivation_path TEXT NOT NULL DEFAULT ''`,
    ],
  },
  {
    version: 5,
    name: 'policies, approvals, decoded intents on sign requests',
    statements: () => [
      // Each version as the admins signed it (custody.v1.SignedPolicy bytes); the highest is current.
      `CREATE TABLE IF NOT EXISTS policies (
        version INT PRIMARY KEY CHECK (version >= 1),
        hash BYTEA NOT NULL,
        signed BYTEA NOT NULL,
        applied_by TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL
      )`,
      `CREATE TABLE IF NOT EXISTS approvals (
        request_id UUID NOT NULL,
        approver TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        expires_at TIMESTAMPTZ NOT NULL,
        signature BYTEA NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (request_id, approver)
      )`,
      // The unsigned transaction, what it does (amount as a decimal string in the smallest unit:
      // exact, and summed as NUMERIC for velocity), and the policy's verdict.
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS payload BYTEA NULL`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS intent JSONB NULL`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS intent_kind TEXT NULL`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS asset TEXT NULL`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS amount TEXT NULL`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS policy_version INT NULL`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS rule TEXT NULL`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS requirements JSONB NULL`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS approval_expires_at TIMESTAMPTZ NULL`,
      `ALTER TABLE sign_requests ADD COLUMN IF NOT EXISTS signed_tx BYTEA NULL`,
      `CREATE INDEX IF NOT EXISTS sign_requests_keyset_velocity_idx ON sign_requests (keyset_id, created_at)`,
      `CREATE INDEX IF NOT EXISTS sign_requests_wallet_velocity_idx ON sign_requests (wallet_id, created_at)`,
    ],
  },
  {
    version: 6,
    name: 'share epochs and refreshes',
    statements: () => [
      `ALTER TABLE keysets ADD COLUMN IF NOT EXISTS epoch INT NOT NULL DEFAULT 0`,
      // A refresh the nodes agreed on: 'committing' until every node made the new share active (a
      // coordinator that stops in between finishes it on start), then 'done'.
      `CREATE TABLE IF NOT EXISTS keyset_refreshes (
        refresh_id UUID PRIMARY KEY,
        keyset_id UUID NOT NULL REFERENCES keysets (keyset_id),
        from_epoch INT NOT NULL,
        commit_session TEXT NOT NULL,
        abort_session TEXT NULL,
        verifying_shares JSONB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('committing', 'done')),
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
      )`,
    ],
  },
  {
    version: 7,
    name: 'reshares',
    // A reshare is a refresh that also changes the threshold and members: the new ones, and the
    // members that leave, with the session whose commit makes them delete their shares.
    statements: () => [
      `ALTER TABLE keyset_refreshes ADD COLUMN IF NOT EXISTS new_threshold INT NULL`,
      `ALTER TABLE keyset_refreshes ADD COLUMN IF NOT EXISTS new_members JSONB NULL`,
      `ALTER TABLE keyset_refreshes ADD COLUMN IF NOT EXISTS retiring JSONB NOT NULL DEFAULT '[]'`,
      `ALTER TABLE keyset_refreshes ADD COLUMN IF NOT EXISTS retire_session TEXT NULL`,
    ],
  },
  {
    version: 8,
    name: 'operator lifecycle operations awaiting approvals',
    // One row per lifecycle command the policy holds for an operator quorum (coordinator/operations.ts):
    // pending -> approved -> consumed (the command ran), or rejected / expired. Approver decisions go
    // to `approvals` keyed by operation_id (operation and request ids are both random UUIDs).
    statements: () => [
      `CREATE TABLE IF NOT EXISTS operations (
        operation_id UUID PRIMARY KEY,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        params JSONB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'consumed')),
        requirements JSONB NOT NULL,
        policy_version INT NOT NULL,
        policy_hash BYTEA NOT NULL,
        initiator TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        error TEXT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS operations_match_idx ON operations (kind, subject, status)`,
      `CREATE INDEX IF NOT EXISTS operations_status_idx ON operations (status, expires_at)`,
    ],
  },
];

const BOOTSTRAP = [
  `CREATE TABLE IF NOT EXISTS schema_migrations (
    version INT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum BYTEA NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
  )`,
  `CREATE TABLE IF NOT EXISTS schema_migrations_lock (
    id INT PRIMARY KEY CHECK (id = 1),
    locked_at TIMESTAMPTZ NULL
  )`,
  `INSERT INTO schema_migrations_lock (id) VALUES (1) ON CONFLICT (id) DO NOTHING`,
];

export function migrationChecksum(m: Migration, dialect: Dialect): Uint8Array {
  const h = createHash('sha256');
  h.update(`${m.version}\n${m.name}\n`);
  for (const s of m.statements(dialect)) h.update(`${s.trim()}\n;\n`);
  return new Uint8Array(h.digest());
}

const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/** Brings the schema up to date. Safe to call on every start and from several processes at once. */
export async function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS): Promise<{ applied: number[] }> {
  // Two processes creating the bootstrap tables at the same moment can collide in the catalog
  // (PostgreSQL reports 23505 or 42P07 there, not 40001); another try finds them in place.
  for (let attempt = 1; ; attempt++) {
    try {
      await db.tx(async (q) => {
        for (const s of BOOTSTRAP) await q.query(s);
      });
      break;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }

  const applied: number[] = [];
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    const checksum = migrationChecksum(m, db.dialect);
    const ran = await db.tx(async (q) => {
      await q.query('UPDATE schema_migrations_lock SET locked_at = $1 WHERE id = 1', [new Date()]);
      const [row] = await q.query<{ checksum: Uint8Array }>('SELECT checksum FROM schema_migrations WHERE version = $1', [
        m.version,
      ]);
      if (row) {
        if (!equalBytes(row.checksum, checksum)) {
          throw new Error(`migration ${m.version} (${m.name}) was changed after it was applied: checksum differs`);
        }
        return false;
      }
      for (const s of m.statements(db.dialect)) await q.query(s);
      await q.query('INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)', [
        m.version,
        m.name,
        checksum,
        new Date(),
      ]);
      return true;
    });
    if (ran) applied.push(m.version);
  }
  return { applied };
}

/** Applied versions, for operators and tests. */
export async function appliedMigrations(q: Queryable): Promise<{ version: number; name: string; appliedAt: Date }[]> {
  const rows = await q.query<{ version: number; name: string; applied_at: Date }>(
    'SELECT version, name, applied_at FROM schema_migrations ORDER BY version',
  );
  return rows.map((r) => ({ version: r.version, name: r.name, appliedAt: r.applied_at }));
}
