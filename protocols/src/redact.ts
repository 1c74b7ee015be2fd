/**
 * Secrets that must never leave Errand in text it shows, stores or sends: tool results (before the
 * model, the effects ledger and the journal see them), model output, log lines, notifications,
 * exports and goals. Two kinds of knowledge feed it:
 *
 * - the VALUES of the secrets a process was configured with (API keys, bot tokens, creds files),
 *   registered by the process edge (`@errand/service`): found wherever they appear, in any format;
 * - PATTERNS of the usual secret formats, which apply everywhere, also in a process that knows no
 *   secret values. They are deliberately broad: a false positive costs a word, a miss costs a key.
 */

export const REDACTED = '[redacted]';

/** Value secrets shorter than this are not registered: they would turn up in ordinary text. */
export const MIN_SECRET_LENGTH = 8;

/** One secret format: what matches is replaced by `replace` (a `String.replace` replacement). */
export interface SecretPattern {
  /** A short name for documentation and tests (`openai`, `pem`, `assignment`…). */
  readonly name: string;
  /** Global (`g`) expression. */
  readonly regex: RegExp;
  /** `[redacted]` unless given; `$1[redacted]` keeps what the first group matched (a name, a user). */
  readonly replace?: string | ((match: string, ...groups: (string | undefined)[]) => string);
}

/** The characters a bare (unquoted) secret value is made of: up to whitespace, a quote or a separator. */
const BARE_VALUE = String.raw`[^\s"'\x60,;&]+`;
/** `NAME=`, `NAME: `, `"name": ` — but not `==`, `=>` (code, not a value). */
const ASSIGN = String.raw`["']?\s*(?::|=(?![=>]))[ \t]*`;

/** A value after an assignment, quoted (the quotes are kept) or bare. */
const assignedValue = (_m: string, name: string | undefined, dq: string | undefined, sq: string | undefined): string =>
  `${name ?? ''}${dq !== undefined ? `"${REDACTED}"` : sq !== undefined ? `'${REDACTED}'` : REDACTED}`;

/** Names whose value is a secret, in any case: `api_key`, `apiKey`, `SLACK_BOT_TOKEN`, `client_secret`, `DB_PASSWORD`… */
const SECRET_WORD = String.raw`(?:api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key|token|secret|password|passwd|credentials?)`;

/**
 * The formats found everywhere. Order matters: whole blocks and structured forms first, so a PEM
 * block is one `[redacted]` and `Authorization: Bearer x` keeps its scheme.
 */
export const SECRET_PATTERNS: readonly SecretPattern[] = [
  // PEM private keys and NATS creds seeds, the whole block — to the end of the text when it was cut off.
  { name: 'pem', regex: /-----BEGIN[A-Z0-9 ]*(?:PRIVATE KEY(?: BLOCK)?|NKEY SEED)-----[\s\S]*?(?:-----END[A-Z0-9 ]*-----|$)/g },
  // scheme://user:password@host — the user stays.
  // (Anchored on `://`: a leading scheme class would be tried at every word of every text.)
  { name: 'url-credentials', regex: /(:\/\/[^\s:@/?#"'<>]*:)[^\s@/?#"'<>]+(?=@)/g, replace: `$1${REDACTED}` },
  // Authorization: Bearer x / "authorization": "Basic x" / Cookie: … — the header name and scheme stay.
  {
    name: 'authorization',
    regex: /\b((?:proxy-)?authorization|set-cookie|cookie)(["']?\s*[:=]\s*["']?(?:(?:bearer|basic|digest|token|bot|apikey)\s+)?)[^\s"',;]+(?:;[^\S\r\n]*[^\s"',;]+)*/gi,
    replace: `$1$2${REDACTED}`,
  },
  // Bearer <token>: a token has a digit, or is long (so "bearer authentication" stays).
  { name: 'bearer', regex: /\b(bearer\s+)(?:(?=[A-Za-z._~+/-]*\d)[\w.~+/-]{8,}|[\w.~+/-]{20,})=*/gi, replace: `$1${REDACTED}` },
  { name: 'anthropic', regex: /\bsk-ant-[\w-]{10,}/g },
  { name: 'openai', regex: /\bsk-(?:proj-|svcacct-|admin-)?[\w-]{10,}/g },
  { name: 'github', regex: /\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,})/g },
  { name: 'slack', regex: /\b(?:xox[abposrce]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,})/g },
  { name: 'aws', regex: /\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b/g },
  { name: 'telegram', regex: /\b\d{8,10}:[\w-]{35}(?![\w-])/g },
  // NKey seeds: S + the key type + 56 base32 characters (58 in all).
  { name: 'nkey-seed', regex: /\bS[UAOCNX][A-Z2-7]{56}\b/g },
  { name: 'jwt', regex: /\beyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]*/g },
  // NAME_TOKEN=…, api_key: …, "password": "…", export DB_PASSWORD='…' — the name stays.
  {
    name: 'assignment',
    regex: new RegExp(String.raw`(${SECRET_WORD}${ASSIGN})(?:"([^"\r\n]+)"|'([^'\r\n]+)'|${BARE_VALUE})`, 'gi'),
    replace: assignedValue,
  },
  // Any upper-case NAME_KEY=… (env style; lower-case `primary_key: id` stays).
  {
    name: 'env-key',
    regex: new RegExp(String.raw`([A-Z0-9]_KEY${ASSIGN})(?:"([^"\r\n]+)"|'([^'\r\n]+)'|${BARE_VALUE})`, 'g'),
    replace: assignedValue,
  },
];

/** Object keys whose string values are secrets as a whole (`{ "apiKey": "…" }`), in redactDeep. */
const SECRET_KEY = new RegExp(String.raw`(?:${SECRET_WORD}|authorization|cookie)$`, 'i');
const SECRET_ENV_KEY = /^[A-Z][A-Z0-9_]*_KEY$/;

/** Whether an object key or variable name names a secret (`OPENAI_API_KEY`, `apiKey`, `client_secret`). */
export function isSecretName(name: string): boolean {
  return SECRET_KEY.test(name) || SECRET_ENV_KEY.test(name);
}

export interface RedactorOptions {
  /** Secret values to find anywhere. Empty and shorter than {@link MIN_SECRET_LENGTH} ones are skipped. */
  secrets?: Iterable<string | undefined>;
  /** The formats to find; {@link SECRET_PATTERNS} unless given. */
  patterns?: readonly SecretPattern[];
}

/**
 * Something each of {@link SECRET_PATTERNS} needs (a separator, a prefix): text without any of them
 * skips the patterns — most strings of a tool result or a record (keys, names, paths, words).
 * Custom patterns are always run.
 */
const MAY_HOLD_SECRET = /[:=]|sk-|gh[pousr]_|github_pat_|xox|xapp-|A[KSB]IA|ACCA|eyJ|-----BEGIN|[Bb][Ee][Aa][Rr][Ee][Rr]\s|S[UAOCNX][A-Z2-7]{56}/;

const JSON_ESCAPES = /\\(?:[nrtbf"\\/]|u[0-9a-fA-F]{4})/g;

/**
 * Replaces secrets with `[redacted]`. Immutable and safe to share: one per process, built at the
 * edge from the configured secrets, handed to the logger and every library that emits text.
 * Text with nothing to find is returned as it was (the same string, the same object), so the
 * common case costs a scan and no allocation.
 */
export class Redactor {
  /** Longest first, so a secret containing another is replaced whole. */
  private readonly values: readonly string[];
  /** How each value appears inside a JSON string (for log lines). */
  private readonly jsonValues: readonly string[];
  private readonly patterns: readonly SecretPattern[];
  private readonly prefilter: RegExp | undefined;

  constructor(options: RedactorOptions = {}) {
    const values = new Set<string>();
    for (const s of options.secrets ?? []) if (typeof s === 'string' && s.length >= MIN_SECRET_LENGTH) values.add(s);
    this.values = [...values].sort((a, b) => b.length - a.length);
    this.jsonValues = this.values.map((v) => JSON.stringify(v).slice(1, -1));
    this.patterns = options.patterns ?? SECRET_PATTERNS;
    this.prefilter = options.patterns ? undefined : MAY_HOLD_SECRET;
  }

  /** How many secret values it knows (patterns apart). */
  get size(): number {
    return this.values.length;
  }

  /** A redactor that also knows `secrets`. */
  with(secrets: Iterable<string | undefined>): Redactor {
    return new Redactor({ secrets: [...this.values, ...secrets], patterns: this.patterns });
  }

  /** `text` with every known secret value and every secret-looking part replaced by `[redacted]`. */
  redact(text: string): string {
    let out = text;
    for (const v of this.values) if (out.includes(v)) out = out.replaceAll(v, REDACTED);
    if (this.prefilter && !this.prefilter.test(out)) return out;
    for (const p of this.patterns) {
      p.regex.lastIndex = 0;
      if (!p.regex.test(out)) continue;
      p.regex.lastIndex = 0;
      out = out.replace(p.regex, (p.replace ?? REDACTED) as string);
    }
    return out;
  }

  /** Whether `text` holds anything {@link redact} would replace. */
  finds(text: string): boolean {
    for (const v of this.values) if (text.includes(v)) return true;
    if (this.prefilter && !this.prefilter.test(text)) return false;
    for (const p of this.patterns) {
      p.regex.lastIndex = 0;
      if (p.regex.test(text)) return true;
    }
    return false;
  }

  /**
   * `value` with every string redacted (object keys included) and the string values of
   * secret-named keys (`apiKey`, `token`, `DB_PASSWORD`…) replaced whole. Plain JSON data: arrays
   * and plain objects are walked (iteratively — any depth), an Error becomes `{type, message,
   * stack}` if it held a secret, other objects are kept as they are. Parts with nothing to redact
   * are shared with the input, not copied; a cycle becomes `[circular]`.
   */
  redactDeep<T>(value: T): T {
    if (typeof value === 'string') return this.redact(value) as T;
    if (value === null || typeof value !== 'object') return value;
    interface Frame {
      /** The input object (an Error included). */
      readonly orig: object;
      /** What is walked: the object itself, or an Error's plain form. */
      readonly src: Record<string, unknown> | unknown[];
      readonly keys: readonly string[] | undefined;
      i: number;
      /** The copy, made at the first change. */
      out: Record<string, unknown> | unknown[] | undefined;
      readonly parent: Frame | undefined;
      readonly slot: string;
    }
    const walkable = (v: unknown): v is object => {
      if (v === null || typeof v !== 'object') return false;
      if (Array.isArray(v) || v instanceof Error) return true;
      const proto = Object.getPrototypeOf(v) as unknown;
      return proto === Object.prototype || proto === null;
    };
    if (!walkable(value)) return value;
    const path = new Set<object>();
    const open = (orig: object, parent: Frame | undefined, slot: string): Frame => {
      path.add(orig);
      const src = orig instanceof Error ? { ...(orig as unknown as Record<string, unknown>), type: orig.name, message: orig.message, stack: orig.stack } : (orig as Record<string, unknown> | unknown[]);
      return { orig, src, keys: Array.isArray(src) ? undefined : Object.keys(src), i: 0, out: undefined, parent, slot };
    };
    const set = (f: Frame, slot: string, v: unknown) => {
      f.out ??= Array.isArray(f.src) ? [...f.src] : { ...f.src };
      (f.out as Record<string, unknown>)[slot] = v;
    };
    let result: unknown = value;
    let frame: Frame | undefined = open(value, undefined, '');
    // Bounded: every step either moves to the next entry of a frame or closes one.
    while (frame) {
      const f: Frame = frame;
      const n = f.keys ? f.keys.length : (f.src as unknown[]).length;
      if (f.i < n) {
        const idx = f.i++;
        let slot = f.keys ? f.keys[idx]! : String(idx);
        const child = (f.src as Record<string, unknown>)[slot];
        let secretKey = false;
        if (f.keys) {
          secretKey = isSecretName(slot);
          const clean = this.redact(slot);
          if (clean !== slot) {
            // A secret in a key: the copy gets the clean key instead.
            f.out ??= { ...f.src };
            delete (f.out as Record<string, unknown>)[slot];
            (f.out as Record<string, unknown>)[clean] = child;
            slot = clean;
          }
        }
        if (typeof child === 'string') {
          const clean = secretKey && child !== '' ? REDACTED : this.redact(child);
          if (clean !== child) set(f, slot, clean);
        } else if (walkable(child)) {
          if (path.has(child)) set(f, slot, '[circular]');
          else frame = open(child, f, slot);
        }
        continue;
      }
      path.delete(f.orig);
      if (f.parent) {
        if (f.out) set(f.parent, f.slot, f.out);
      } else {
        result = f.out ?? f.orig;
      }
      frame = f.parent;
    }
    return result as T;
  }

  /**
   * One JSON log line (pino's) with its secrets redacted: returned unchanged unless something is
   * found, otherwise parsed, redacted with {@link redactDeep} and written again — so it stays JSON
   * and the secrets are found in the decoded strings, not in their escaped form.
   */
  redactJsonLine(line: string): string {
    const probe = line.includes('\\') ? line.replace(JSON_ESCAPES, ' ') : line;
    let found = false;
    for (const v of this.jsonValues) if (line.includes(v)) found = true;
    if (!found && !this.finds(probe)) return line;
    try {
      const clean = JSON.stringify(this.redactDeep(JSON.parse(line) as unknown));
      return line.endsWith('\n') ? `${clean}\n` : clean;
    } catch {
      return this.redact(line);
    }
  }
}

/** Builds a {@link Redactor}: secret values plus the patterns. */
export function createRedactor(options: RedactorOptions = {}): Redactor {
  return new Redactor(options);
}

/** Patterns only: what a library uses when it was handed no redactor. */
export const patternRedactor: Redactor = new Redactor();

/** `text` with every secret-looking part (patterns only) replaced by `[redacted]`. */
export function redactSecrets(text: string): string {
  return patternRedactor.redact(text);
}

/** {@link Redactor.redactDeep} with patterns only. */
export function redactDeep<T>(value: T): T {
  return patternRedactor.redactDeep(value);
}
