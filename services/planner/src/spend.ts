import { isRevisionConflict, type KV } from '@errand/nats';
import { effectKeys, roundUsd } from '@errand/protocols';

/** USD per day, by label (`team=research`). */
export type DailyCaps = Readonly<Record<string, number>>;

/**
 * Each label's model spend today, kept in the effects bucket (which expires it) and updated with
 * compare-and-set, so every planner replica on every machine counts into the same number.
 */
export class SpendLedger {
  constructor(
    private readonly kv: KV,
    private readonly caps: DailyCaps,
    private readonly now: () => number = Date.now,
  ) {}

  private key(label: string): string {
    const day = new Date(this.now()).toISOString().slice(0, 10);
    return effectKeys.spend(label, day);
  }

  /** The capped labels of `labels` (as `key=value`). */
  private capped(labels: Readonly<Record<string, string>> | undefined): string[] {
    return Object.entries(labels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .filter((l) => this.caps[l] !== undefined);
  }

  /** The first capped label whose spend today reached its cap, if any. */
  async overCap(labels: Readonly<Record<string, string>> | undefined): Promise<{ label: string; spentUsd: number; capUsd: number } | undefined> {
    for (const label of this.capped(labels)) {
      const spentUsd = await this.spent(label);
      const capUsd = this.caps[label]!;
      if (spentUsd >= capUsd) return { label, spentUsd, capUsd };
    }
    return undefined;
  }

  async spent(label: string): Promise<number> {
    const e = await this.kv.get(this.key(label));
    return e?.operation === 'PUT' ? Number(e.string()) || 0 : 0;
  }

  /** Adds a call's cost to each capped label (bounded retries when replicas race). */
  async charge(labels: Readonly<Record<string, string>> | undefined, costUsd: number): Promise<void> {
    if (!(costUsd > 0)) return;
    for (const label of this.capped(labels)) {
      const key = this.key(label);
      for (let attempt = 0; attempt < 20; attempt++) {
        const e = await this.kv.get(key);
        const current = e?.operation === 'PUT' ? Number(e.string()) || 0 : 0;
        const next = String(roundUsd(current + costUsd));
        try {
          if (e?.operation === 'PUT') await this.kv.update(key, next, e.revision);
          else await this.kv.create(key, next);
          break;
        } catch (err) {
          if (!isRevisionConflict(err)) throw err;
        }
      }
    }
  }
}
