/**
 * Nesting limits, measured without recursion: a message nested thousands of levels deep must be
 * refused with a clear error, not overflow the stack of whatever walks it next (schema parsing,
 * canonical JSON for hashes, redaction, structured clones).
 */

/** The deepest any message may nest (the message object itself is level 1). */
export const MAX_NESTING_DEPTH = 64;

/**
 * The deepest a submitted goal may nest. Less than {@link MAX_NESTING_DEPTH}: the goal's input is
 * carried further down in the messages that wrap it later (the journal's first step, a child's
 * goal, a fork seed), and those must still fit.
 */
export const MAX_GOAL_DEPTH = 48;

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether JSON text nests deeper than `max` objects/arrays. Reads the bytes once; strings (with
 * their escapes) are skipped. Malformed text is left for the parser to report.
 */
export function jsonNestsDeeper(data: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) {
      inString = true;
    } else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}

/**
 * Whether msgpack bytes nest deeper than `max` maps/arrays. Walks the item headers with an explicit
 * stack of how many items each open container still holds, skipping scalar payloads. Truncated or
 * invalid bytes stop the walk (false): the decoder reports them.
 */
export function msgpackNestsDeeper(data: Uint8Array, max: number): boolean {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const open: number[] = [];
  let i = 0;
  const n = data.length;
  const u8 = (at: number) => (at < n ? data[at]! : 0);
  const u16 = (at: number) => (at + 2 <= n ? view.getUint16(at) : 0);
  const u32 = (at: number) => (at + 4 <= n ? view.getUint32(at) : 0);
  while (i < n) {
    const b = data[i]!;
    let header = 1;
    let skip = 0;
    let items = -1; // -1: a scalar; otherwise a container with this many items (keys and values)
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
      // fixint, negative fixint, nil, false, true
    } else if (b <= 0x8f) items = (b & 0x0f) * 2;
    else if (b <= 0x9f) items = b & 0x0f;
    else if (b <= 0xbf) skip = b & 0x1f;
    else {
      switch (b) {
        case 0xc4: case 0xd9: header = 2; skip = u8(i + 1); break; // bin8, str8
        case 0xc5: case 0xda: header = 3; skip = u16(i + 1); break; // bin16, str16
        case 0xc6: case 0xdb: header = 5; skip = u32(i + 1); break; // bin32, str32
        case 0xc7: header = 3; skip = u8(i + 1); break; // ext8
        case 0xc8: header = 4; skip = u16(i + 1); break; // ext16
        case 0xc9: header = 6; skip = u32(i + 1); break; // ext32
        case 0xca: case 0xce: case 0xd2: skip = 4; break; // float32, uint32, int32
        case 0xcb: case 0xcf: case 0xd3: skip = 8; break; // float64, uint64, int64
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xd4: skip = 2; break; // fixext1 (type + 1)
        case 0xd5: skip = 3; break;
        case 0xd6: skip = 5; break;
        case 0xd7: skip = 9; break;
        case 0xd8: skip = 17; break;
        case 0xdc: header = 3; items = u16(i + 1); break; // array16
        case 0xdd: header = 5; items = u32(i + 1); break; // array32
        case 0xde: header = 3; items = u16(i + 1) * 2; break; // map16
        case 0xdf: header = 5; items = u32(i + 1) * 2; break; // map32
        default: return false; // 0xc1 is never used: not msgpack
      }
    }
    i += header + skip;
    if (open.length) open[open.length - 1]!--;
    if (items >= 0) {
      if (open.length + 1 > max) return true;
      if (items > 0) open.push(items);
    }
    while (open.length && open[open.length - 1] === 0) open.pop();
    if (!open.length) return false;
  }
  return false;
}

/**
 * Whether a value nests deeper than `max` objects/arrays (the value itself, if one, is level 1).
 * Iterative, so any depth is measured safely.
 */
export function valueNestsDeeper(value: unknown, max: number): boolean {
  const stack: { v: unknown; d: number }[] = [{ v: value, d: 1 }];
  while (stack.length) {
    const { v, d } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push({ v: child, d: d + 1 });
    }
  }
  return false;
}
