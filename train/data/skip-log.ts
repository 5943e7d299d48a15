/**
 * Aggregates skip records by reason so a reader that drops 100k labels of other classes
 * reports one line per reason, with a few example locations and a count.
 */
import type { SkipRecord } from './types.js';

/** How many example locations a record keeps in its `what`. */
const MAX_EXAMPLES = 5;

/** Collects skips; {@link SkipLog.records} returns them aggregated by reason, in first-seen order. */
export class SkipLog {
  private readonly byReason = new Map<string, { examples: string[]; count: number }>();

  /** Records one skipped item. */
  add(what: string, reason: string): void {
    let e = this.byReason.get(reason);
    if (!e) {
      e = { examples: [], count: 0 };
      this.byReason.set(reason, e);
    }
    e.count++;
    if (e.examples.length < MAX_EXAMPLES) e.examples.push(what);
  }

  /** Total number of skipped items over all reasons. */
  get total(): number {
    let n = 0;
    for (const e of this.byReason.values()) n += e.count;
    return n;
  }

  /** One record per reason: `what` lists up to 5 examples and `(+N more)`. */
  records(): SkipRecord[] {
    const out: SkipRecord[] = [];
    for (const [reason, e] of this.byReason) {
      const more = e.count > e.examples.length ? ` (+${e.count - e.examples.length} more)` : '';
      out.push({ what: e.examples.join(', ') + more, reason, count: e.count });
    }
    return out;
  }
}
