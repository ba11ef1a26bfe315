/**
 * Grouped database writes for finished requests: completions arriving in the same event-loop turn
 * share one transaction (one status update each, one audit chain append for all), so the audit
 * chain's head is read once per group instead of once per signature.
 */
import type { Logger } from '../runtime/log.js';
import { appendAuditMany, type AuditEntry } from './store/audit.js';
import type { Db } from './store/db.js';
import { durably } from './store/durably.js';
import { updateSignRequest, type SignRequestRow, type SignRequestUpdate } from './store/repo.js';

interface Pending {
  requestId: string;
  update: Omit<SignRequestUpdate, 'expectedStatus' | 'expectedOwner'>;
  audit: AuditEntry;
  resolve: (row: SignRequestRow | undefined) => void;
  reject: (e: unknown) => void;
}

const MAX_GROUP = 256;

export class CompletionWriter {
  private queue: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly owner: string,
  ) {}

  /**
   * Moves a request out of `signing` if this coordinator still owns it. Resolves with the new row,
   * or undefined when another coordinator took the request over (our result is then discarded).
   */
  complete(requestId: string, update: Pending['update'], audit: AuditEntry): Promise<SignRequestRow | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ requestId, update, audit, resolve, reject });
      if (this.queue.length >= MAX_GROUP) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const group = this.queue.splice(0, MAX_GROUP);
    if (group.length === 0) return;
    void durably(this.log, 'complete requests', () =>
      this.db.tx(async (q) => {
        const rows: (SignRequestRow | undefined)[] = [];
        const audits: AuditEntry[] = [];
        for (const p of group) {
          const row = await updateSignRequest(q, p.requestId, {
            ...p.update,
            owner: null,
            leaseUntil: null,
            expectedStatus: 'signing',
            expectedOwner: this.owner,
          });
          rows.push(row);
          if (row) audits.push(p.audit);
        }
        await appendAuditMany(q, audits);
        return rows;
      }),
    ).then(
      (rows) => group.forEach((p, i) => p.resolve(rows[i])),
      (e: unknown) => group.forEach((p) => p.reject(e)),
    );
    if (this.queue.length) this.flush();
  }
}
