/**
 * Grouped database writes for finished requests (store/group-commit.ts): completions share one
 * transaction, one UPDATE for all their rows and one audit chain append, so the audit chain's head
 * is read once per group instead of once per signature.
 */
import type { Logger } from '../runtime/log.js';
import { appendAuditMany, type AuditEntry } from './store/audit.js';
import type { Db } from './store/db.js';
import { durably } from './store/durably.js';
import { GroupCommit } from './store/group-commit.js';
import { completeSignRequests, type SignRequestCompletion, type SignRequestRow } from './store/repo.js';

interface Completion {
  outcome: SignRequestCompletion;
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
  complete(outcome: SignRequestCompletion, audit: AuditEntry): Promise<SignRequestRow | undefined> {
    return this.groups.submit({ outcome, audit });
  }

  private async write(group: Completion[]): Promise<PromiseSettledResult<SignRequestRow | undefined>[]> {
    const rows = await durably(this.log, 'complete requests', () =>
      this.db.tx(async (q) => {
        const rows = await completeSignRequests(q, this.owner, group.map((p) => p.outcome));
        await appendAuditMany(q, group.filter((_, i) => rows[i]).map((p) => p.audit));
        return rows;
      }),
    );
    return rows.map((value) => ({ status: 'fulfilled', value }));
  }
}
