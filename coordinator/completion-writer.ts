/**
 * Grouped database writes for finished requests (store/group-commit.ts): completions share one
 * transaction (one status update each, one audit chain append for all), so the audit chain's head
 * is read once per group instead of once per signature.
 */
import type { Logger } from '../runtime/log.js';
import { appendAuditMany, type AuditEntry } from './store/audit.js';
import type { Db } from './store/db.js';
import { durably } from './store/durably.js';
import { GroupCommit } from './store/group-commit.js';
import { updateSignRequest, type SignRequestRow, type SignRequestUpdate } from './store/repo.js';

interface Completion {
  requestId: string;
  update: Omit<SignRequestUpdate, 'expectedStatus' | 'expectedOwner'>;
  audit: AuditEntry;
}

export class CompletionWriter {
  private readonly groups: GroupCommit<Completion, SignRequestRow | undefined>;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly owner: string,
  ) {
    this.groups = new GroupCommit((group) => this.write(group));
  }

  /**
   * Moves a request out of `signing` if this coordinator still owns it. Resolves with the new row,
   * or undefined when another coordinator took the request over (our result is then discarded).
   */
  complete(requestId: string, update: Completion['update'], audit: AuditEntry): Promise<SignRequestRow | undefined> {
    return this.groups.submit({ requestId, update, audit });
  }

  private async write(group: Completion[]): Promise<PromiseSettledResult<SignRequestRow | undefined>[]> {
    const rows = await durably(this.log, 'complete requests', () =>
      this.db.tx(async (q) => {
        const rows: (SignRequestRow | undefined)[] = [];
        const audits: AuditEntry[] = [];
        for (const p of group) {
          const row = await updateSignRequest(q, p.requestId, { ...p.update, owner: null, leaseUntil: null, expectedStatus: 'signing', expectedOwner: this.owner });
          rows.push(row);
          if (row) audits.push(p.audit);
        }
        await appendAuditMany(q, audits);
        return rows;
      }),
    );
    return rows.map((value) => ({ status: 'fulfilled', value }));
  }
}
