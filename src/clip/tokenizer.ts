/**
 * CLIP's byte-level BPE tokenizer, matching OpenAI's `SimpleTokenizer`
 * (clip/simple_tokenizer.py) id for id, without its ftfy repair step.
 *
 * Pipeline: clean the text (HTML entities twice, whitespace runs, lower case),
 * split it into pieces with CLIP's regex, map each piece's UTF-8 bytes to
 * printable characters (GPT-2's bytes_to_unicode), then merge symbol pairs by
 * rank until no ranked pair is left.
 *
 * The vocabulary can come from any of the three forms CLIP is shipped in:
 * Hugging Face `tokenizer.json`, Hugging Face `vocab.json` + `merges.txt`, or
 * OpenAI's `bpe_simple_vocab_16e6.txt.gz`. This module takes the files'
 * text (a browser fetches them); tokenizer-file.ts reads them from disk.
 */

const START_OF_TEXT = '<|startoftext|>';
const END_OF_TEXT = '<|endoftext|>';
/** Suffix marking the last symbol of a word; it is how CLIP's BPE knows word ends. */
const END_OF_WORD = '</w>';
/** OpenAI keeps only the merges that fit a 49,152-token vocabulary (256 bytes, 2 specials). */
const OPENAI_MERGE_COUNT = 49152 - 256 - 2;
const DEFAULT_CONTEXT_LENGTH = 77;
/** Piece cache bound: class prompts repeat few words, but arbitrary captions must not grow memory forever. */
const PIECE_CACHE_LIMIT = 1 << 17;

// ---------------------------------------------------------------------------
// Byte alphabet (GPT-2 / CLIP bytes_to_unicode)
// ---------------------------------------------------------------------------

/**
 * Every byte gets a printable, non-whitespace character so BPE symbols are
 * ordinary strings: printable Latin-1 bytes keep their own character, the
 * others map to chr(256 + n). The order (printable bytes first) is the order
 * of the first 256 ids in OpenAI's vocabulary.
 */
function byteAlphabet(): { byteToSymbol: string[]; symbolsInVocabOrder: string[] } {
  const isPrintable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const byteToSymbol = new Array<string>(256);
  const printable: string[] = [];
  const remapped: string[] = [];
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (isPrintable(b)) {
      byteToSymbol[b] = String.fromCharCode(b);
      printable.push(byteToSymbol[b]);
    } else {
      byteToSymbol[b] = String.fromCharCode(256 + next++);
      remapped.push(byteToSymbol[b]);
    }
  }
  return { byteToSymbol, symbolsInVocabOrder: [...printable, ...remapped] };
}

const { byteToSymbol: BYTE_TO_SYMBOL, symbolsInVocabOrder: BYTE_SYMBOLS } = byteAlphabet();
const SYMBOL_TO_BYTE = new Map(BYTE_TO_SYMBOL.map((symbol, byte) => [symbol, byte]));
const utf8Encoder = new TextEncoder();

/** A piece's UTF-8 bytes as byte symbols. (A lone surrogate becomes U+FFFD's bytes; Python would raise.) */
function toByteSymbols(piece: string): string {
  let symbols = '';
  for (const byte of utf8Encoder.encode(piece)) symbols += BYTE_TO_SYMBOL[byte];
  return symbols;
}

// ---------------------------------------------------------------------------
// Text cleaning (OpenAI basic_clean + whitespace_clean + lower, without ftfy)
// ---------------------------------------------------------------------------

/**
 * Python `regex`'s `\s` (the Unicode White_Space property). JavaScript's `\s`
 * differs (it lacks U+0085 and adds U+FEFF), so the class is spelled out.
 */
const WHITESPACE = String.raw`\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000`;
/** Python's `str.strip()` also drops the information separators U+001C..U+001F. */
const STRIPPED = String.raw`${WHITESPACE}\u001c-\u001f`;
const WHITESPACE_RUN = new RegExp(`[${WHITESPACE}]+`, 'gu');
const LEADING_OR_TRAILING_SPACE = new RegExp(`^[${STRIPPED}]+|[${STRIPPED}]+$`, 'gu');

/**
 * CLIP's piece pattern. OpenAI compiles it with IGNORECASE, which on
 * lower-cased text matters in two places, spelled out here because
 * JavaScript's `i` flag would differ elsewhere: the long s `ſ` folds to `s`
 * (`'ſ`, `<|ſtartoftext|>`), and U+0345 (combining ypogegrammeni, which folds to
 * a letter) is matched by no alternative, so Python drops it from the text.
 */
const PIECE_PATTERN = new RegExp(
  String.raw`<\|[sſ]tartoftext\|>|<\|endoftext\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^${WHITESPACE}\p{L}\p{N}\u0345]+`,
  'gu',
);

const pythonStrip = (text: string): string => text.replace(LEADING_OR_TRAILING_SPACE, '');

/**
 * The words BPE sees in `text`: the cleaned text's pieces as byte symbols,
 * before any merge. What a BPE vocabulary is trained on.
 */
export function preTokenize(text: string): string[] {
  return Array.from(cleanText(text).matchAll(PIECE_PATTERN), ([piece]) => toByteSymbols(piece));
}

/** The 256 byte symbols in the order of a CLIP vocabulary's first ids. */
export function byteSymbols(): readonly string[] {
  return BYTE_SYMBOLS;
}

/** The text CLIP actually tokenizes: `whitespace_clean(basic_clean(text)).lower()`. */
export function cleanText(text: string): string {
  const unescaped = pythonStrip(htmlUnescape(htmlUnescape(text)));
  return pythonStrip(unescaped.replace(WHITESPACE_RUN, ' ')).toLowerCase();
}

// ---------------------------------------------------------------------------
// HTML entities (Python's html.unescape)
// ---------------------------------------------------------------------------

/**
 * Named entities that HTML (and Python) also accept without the trailing ';':
 * the ISO Latin-1 set plus the markup characters.
 */
const LEGACY_ENTITIES: Record<string, number> = {
  quot: 0x22, amp: 0x26, lt: 0x3c, gt: 0x3e, QUOT: 0x22, AMP: 0x26, LT: 0x3c, GT: 0x3e,
  COPY: 0xa9, REG: 0xae,
  nbsp: 0xa0, iexcl: 0xa1, cent: 0xa2, pound: 0xa3, curren: 0xa4, yen: 0xa5, brvbar: 0xa6,
  sect: 0xa7, uml: 0xa8, copy: 0xa9, ordf: 0xaa, laquo: 0xab, not: 0xac, shy: 0xad, reg: 0xae,
  macr: 0xaf, deg: 0xb0, plusmn: 0xb1, sup2: 0xb2, sup3: 0xb3, acute: 0xb4, micro: 0xb5,
  para: 0xb6, middot: 0xb7, cedil: 0xb8, sup1: 0xb9, ordm: 0xba, raquo: 0xbb, frac14: 0xbc,
  frac12: 0xbd, frac34: 0xbe, iquest: 0xbf, Agrave: 0xc0, Aacute: 0xc1, Acirc: 0xc2,
  Atilde: 0xc3, Auml: 0xc4, Aring: 0xc5, AElig: 0xc6, Ccedil: 0xc7, Egrave: 0xc8, Eacute: 0xc9,
  Ecirc: 0xca, Euml: 0xcb, Igrave: 0xcc, Iacute: 0xcd, Icirc: 0xce, Iuml: 0xcf, ETH: 0xd0,
  Ntilde: 0xd1, Ograve: 0xd2, Oacute: 0xd3, Ocirc: 0xd4, Otilde: 0xd5, Ouml: 0xd6, times: 0xd7,
  Oslash: 0xd8, Ugrave: 0xd9, Uacute: 0xda, Ucirc: 0xdb, Uuml: 0xdc, Yacute: 0xdd, THORN: 0xde,
  szlig: 0xdf, agrave: 0xe0, aacute: 0xe1, acirc: 0xe2, atilde: 0xe3, auml: 0xe4, aring: 0xe5,
  aelig: 0xe6, ccedil: 0xe7, egrave: 0xe8, eacute: 0xe9, ecirc: 0xea, euml: 0xeb, igrave: 0xec,
  iacute: 0xed, icirc: 0xee, iuml: 0xef, eth: 0xf0, ntilde: 0xf1, ograve: 0xf2, oacute: 0xf3,
  ocirc: 0xf4, otilde: 0xf5, ouml: 0xf6, divide: 0xf7, oslash: 0xf8, ugrave: 0xf9, uacute: 0xfa,
  ucirc: 0xfb, uuml: 0xfc, yacute: 0xfd, thorn: 0xfe, yuml: 0xff,
};

/**
 * Entities recognised only with the trailing ';': the rest of HTML 4 (with
 * HTML5's values for lang/rang) and `apos`.
 *
 * Limitation: Python knows all 2,231 HTML5 names; the ones missing here (e.g.
 * `&check;`, `&copysr;`) stay as written, or decode by their longest legacy
 * prefix (`&copysr;` -> `©sr;`), where Python would decode them whole.
 * Numeric references follow Python exactly.
 */
const SEMICOLON_ENTITIES: Record<string, number> = {
  apos: 0x27,
  OElig: 0x152, oelig: 0x153, Scaron: 0x160, scaron: 0x161, Yuml: 0x178, fnof: 0x192, circ: 0x2c6,
  tilde: 0x2dc, Alpha: 0x391, Beta: 0x392, Gamma: 0x393, Delta: 0x394, Epsilon: 0x395, Zeta: 0x396,
  Eta: 0x397, Theta: 0x398, Iota: 0x399, Kappa: 0x39a, Lambda: 0x39b, Mu: 0x39c, Nu: 0x39d,
  Xi: 0x39e, Omicron: 0x39f, Pi: 0x3a0, Rho: 0x3a1, Sigma: 0x3a3, Tau: 0x3a4, Upsilon: 0x3a5,
  Phi: 0x3a6, Chi: 0x3a7, Psi: 0x3a8, Omega: 0x3a9, alpha: 0x3b1, beta: 0x3b2, gamma: 0x3b3,
  delta: 0x3b4, epsilon: 0x3b5, zeta: 0x3b6, eta: 0x3b7, theta: 0x3b8, iota: 0x3b9, kappa: 0x3ba,
  lambda: 0x3bb, mu: 0x3bc, nu: 0x3bd, xi: 0x3be, omicron: 0x3bf, pi: 0x3c0, rho: 0x3c1,
  sigmaf: 0x3c2, sigma: 0x3c3, tau: 0x3c4, upsilon: 0x3c5, phi: 0x3c6, chi: 0x3c7, psi: 0x3c8,
  omega: 0x3c9, thetasym: 0x3d1, upsih: 0x3d2, piv: 0x3d6, ensp: 0x2002, emsp: 0x2003,
  thinsp: 0x2009, zwnj: 0x200c, zwj: 0x200d, lrm: 0x200e, rlm: 0x200f, ndash: 0x2013,
  mdash: 0x2014, lsquo: 0x2018, rsquo: 0x2019, sbquo: 0x201a, ldquo: 0x201c, rdquo: 0x201d,
  bdquo: 0x201e, dagger: 0x2020, Dagger: 0x2021, bull: 0x2022, hellip: 0x2026, permil: 0x2030,
  prime: 0x2032, Prime: 0x2033, lsaquo: 0x2039, rsaquo: 0x203a, oline: 0x203e, frasl: 0x2044,
  euro: 0x20ac, image: 0x2111, weierp: 0x2118, real: 0x211c, trade: 0x2122, alefsym: 0x2135,
  larr: 0x2190, uarr: 0x2191, rarr: 0x2192, darr: 0x2193, harr: 0x2194, crarr: 0x21b5,
  lArr: 0x21d0, uArr: 0x21d1, rArr: 0x21d2, dArr: 0x21d3, hArr: 0x21d4, forall: 0x2200,
  part: 0x2202, exist: 0x2203, empty: 0x2205, nabla: 0x2207, isin: 0x2208, notin: 0x2209,
  ni: 0x220b, prod: 0x220f, sum: 0x2211, minus: 0x2212, lowast: 0x2217, radic: 0x221a,
  prop: 0x221d, infin: 0x221e, ang: 0x2220, and: 0x2227, or: 0x2228, cap: 0x2229, cup: 0x222a,
  int: 0x222b, there4: 0x2234, sim: 0x223c, cong: 0x2245, asymp: 0x2248, ne: 0x2260, equiv: 0x2261,
  le: 0x2264, ge: 0x2265, sub: 0x2282, sup: 0x2283, nsub: 0x2284, sube: 0x2286, supe: 0x2287,
  oplus: 0x2295, otimes: 0x2297, perp: 0x22a5, sdot: 0x22c5, lceil: 0x2308, rceil: 0x2309,
  lfloor: 0x230a, rfloor: 0x230b, lang: 0x27e8, rang: 0x27e9, loz: 0x25ca, spades: 0x2660,
  clubs: 0x2663, hearts: 0x2665, diams: 0x2666,
};

/** Entity name as written (with ';' where required) -> replacement text, like Python's html5 table. */
const NAMED_ENTITIES = new Map<string, string>([
  ...Object.entries(LEGACY_ENTITIES).flatMap(([name, code]): [string, string][] => [
    [name, String.fromCodePoint(code)],
    [`${name};`, String.fromCodePoint(code)],
  ]),
  ...Object.entries(SEMICOLON_ENTITIES).map(([name, code]): [string, string] => [`${name};`, String.fromCodePoint(code)]),
]);

/** Numeric references HTML5 redirects: NUL, CR, and the C1 range read as Windows-1252. */
const REDIRECTED_CHARREFS = new Map<number, string>([
  [0x00, '\ufffd'], [0x0d, '\r'],
  ...[...'€\x81‚ƒ„…†‡ˆ‰Š‹Œ\x8dŽ\x8f\x90‘’“”•–—˜™š›œ\x9džŸ'].map((char, i): [number, string] => [0x80 + i, char]),
]);

/** Code points Python's html.unescape drops: controls and noncharacters. */
function isDroppedCodePoint(code: number): boolean {
  return (
    (code >= 0x01 && code <= 0x08) || code === 0x0b || (code >= 0x0e && code <= 0x1f) ||
    (code >= 0x7f && code <= 0x9f) || (code >= 0xfdd0 && code <= 0xfdef) ||
    (code & 0xfffe) === 0xfffe // U+xFFFE and U+xFFFF of every plane
  );
}

const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function decodeNumericReference(reference: string): string {
  const hex = reference[1] === 'x' || reference[1] === 'X';
  const digits = reference.slice(hex ? 2 : 1).replace(/;$/, '');
  // An over-long digit string loses precision here but stays above 0x10FFFF, which is all that matters.
  const code = Number.parseInt(digits, hex ? 16 : 10);
  const redirected = REDIRECTED_CHARREFS.get(code);
  if (redirected !== undefined) return redirected;
  if ((code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) return '\ufffd';
  if (isDroppedCodePoint(code)) return '';
  return String.fromCodePoint(code);
}

function decodeNamedReference(reference: string): string {
  const whole = NAMED_ENTITIES.get(reference);
  if (whole !== undefined) return whole;
  // Like browsers, Python accepts a legacy entity followed by other text ("&copy2024").
  const chars = Array.from(reference);
  for (let length = chars.length - 1; length > 1; length--) {
    const prefix = NAMED_ENTITIES.get(chars.slice(0, length).join(''));
    if (prefix !== undefined) return prefix + chars.slice(length).join('');
  }
  return `&${reference}`;
}

/** Python's `html.unescape` (numeric references exact; named ones see SEMICOLON_ENTITIES). */
export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (_match, reference: string) =>
    reference[0] === '#' ? decodeNumericReference(reference) : decodeNamedReference(reference),
  );
}

// ---------------------------------------------------------------------------
// Vocabulary files
// ---------------------------------------------------------------------------

export type MergePair = readonly [string, string];

/** Runs `work`, naming `file` in any error it throws. */
export function blamingFile<T>(file: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw new Error(`Invalid CLIP tokenizer file ${file}: ${(error as Error).message}`, { cause: error });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`not valid JSON (${(error as Error).message})`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** token -> id from a JSON object, checking every id is a non-negative integer. */
function vocabularyFromJson(value: unknown, where: string): Map<string, number> {
  if (!isRecord(value)) throw new Error(`${where} is not an object of token -> id`);
  const vocabulary = new Map<string, number>();
  for (const [token, id] of Object.entries(value)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new Error(`${where} gives token ${JSON.stringify(token)} the id ${JSON.stringify(id)}, not a non-negative integer`);
    }
    vocabulary.set(token, id);
  }
  return vocabulary;
}

/** One merge rule written as "a b". */
function parseMergeLine(line: string, lineNumber: number): MergePair {
  const parts = line.trim().split(/\s+/);
  if (parts.length !== 2) throw new Error(`line ${lineNumber} is not a merge "a b": ${JSON.stringify(line)}`);
  return [parts[0], parts[1]];
}

/** Hugging Face merges.txt: an optional `#version` line, then one "a b" merge per line. */
function parseMergesText(text: string): MergePair[] {
  const lines = text.split(/\r?\n/);
  const merges: MergePair[] = [];
  lines.forEach((line, index) => {
    if (line.trim() === '' || (index === 0 && line.startsWith('#version'))) return;
    merges.push(parseMergeLine(line, index + 1));
  });
  return merges;
}

/** Hugging Face tokenizers `tokenizer.json`: a BPE model, plus special tokens possibly only in added_tokens. */
function parseTokenizerJson(json: unknown): { vocabulary: Map<string, number>; merges: MergePair[] } {
  if (!isRecord(json) || !isRecord(json.model)) throw new Error('no "model" object');
  const model = json.model;
  if (model.type !== undefined && model.type !== 'BPE') throw new Error(`model type is ${JSON.stringify(model.type)}, not "BPE"`);
  const vocabulary = vocabularyFromJson(model.vocab, 'model.vocab');
  if (!Array.isArray(model.merges)) throw new Error('model.merges is not an array');
  const merges = model.merges.map((merge: unknown, index: number): MergePair => {
    if (typeof merge === 'string') return parseMergeLine(merge, index + 1);
    if (Array.isArray(merge) && merge.length === 2 && merge.every((part) => typeof part === 'string')) {
      return [merge[0], merge[1]];
    }
    throw new Error(`model.merges[${index}] is neither "a b" nor ["a", "b"]`);
  });
  if (Array.isArray(json.added_tokens)) {
    for (const added of json.added_tokens) {
      if (isRecord(added) && typeof added.content === 'string' && typeof added.id === 'number' && !vocabulary.has(added.content)) {
        vocabulary.set(added.content, added.id);
      }
    }
  }
  return { vocabulary, merges };
}

/**
 * OpenAI's bpe_simple_vocab_16e6.txt: a header line, then merges. The ids are
 * implicit, built as SimpleTokenizer does: byte symbols, byte symbols + '</w>',
 * each merge's result, then the two special tokens.
 */
function parseOpenAiBpe(text: string): { vocabulary: Map<string, number>; merges: MergePair[] } {
  // The file holds ~262k lines; only the first OPENAI_MERGE_COUNT after the header are used.
  const merges: MergePair[] = [];
  let lineStart = text.indexOf('\n') + 1;
  while (lineStart > 0 && merges.length < OPENAI_MERGE_COUNT) {
    const lineEnd = text.indexOf('\n', lineStart);
    const line = text.slice(lineStart, lineEnd === -1 ? undefined : lineEnd);
    merges.push(parseMergeLine(line, merges.length + 2));
    lineStart = lineEnd + 1;
  }
  if (merges.length < OPENAI_MERGE_COUNT) {
    throw new Error(`has ${merges.length} merge lines, CLIP needs ${OPENAI_MERGE_COUNT}`);
  }
  // Later duplicates win, as in Python's dict(zip(vocab, range(len(vocab)))).
  const vocabulary = new Map<string, number>();
  let nextId = 0;
  const add = (token: string): void => {
    vocabulary.set(token, nextId++);
  };
  for (const symbol of BYTE_SYMBOLS) add(symbol);
  for (const symbol of BYTE_SYMBOLS) add(symbol + END_OF_WORD);
  for (const [first, second] of merges) add(first + second);
  add(START_OF_TEXT);
  add(END_OF_TEXT);
  return { vocabulary, merges };
}

// ---------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------

/** A batch of tokenized texts: `ids` is row-major [count, contextLength]. */
export interface TokenBatch {
  readonly ids: Int32Array;
  readonly count: number;
  readonly contextLength: number;
}

export class ClipTokenizer {
  /** Id of `<|startoftext|>` (49406 in CLIP's vocabulary). */
  readonly startToken: number;
  /** Id of `<|endoftext|>` (49407 in CLIP's vocabulary, its highest id: CLIP's text encoder finds it by argmax). */
  readonly endToken: number;
  /** CLIP's text context: 77 positions including the start and end tokens. */
  readonly contextLength = DEFAULT_CONTEXT_LENGTH;
  /** Number of entries in the vocabulary. */
  readonly vocabularySize: number;

  private readonly tokenToId: ReadonlyMap<string, number>;
  /** id -> token, built on the first `decode` (a debugging aid, not worth its load time otherwise). */
  private idToToken: Map<number, string> | undefined;
  /** "first second" -> rank; a space never occurs inside a byte-level symbol. */
  private readonly mergeRanks = new Map<string, number>();
  private readonly merges: readonly MergePair[];
  /** Piece of cleaned text -> its ids (see resetPieceCache). */
  private readonly pieceCache = new Map<string, readonly number[]>();

  /** Takes ownership of `vocabulary`, which its callers have just built. */
  private constructor(vocabulary: ReadonlyMap<string, number>, merges: readonly MergePair[]) {
    this.tokenToId = vocabulary;
    this.vocabularySize = vocabulary.size;
    this.merges = merges;
    merges.forEach(([first, second], rank) => this.mergeRanks.set(`${first} ${second}`, rank));
    this.startToken = this.requireToken(START_OF_TEXT);
    this.endToken = this.requireToken(END_OF_TEXT);
    this.checkCoverage();
    this.resetPieceCache();
  }

  /** Hugging Face tokenizers `tokenizer.json`, its text (merges as "a b" strings or ["a", "b"] pairs); `file` names it in errors. */
  static fromTokenizerJsonText(text: string, file = 'tokenizer.json'): ClipTokenizer {
    return blamingFile(file, () => {
      const { vocabulary, merges } = parseTokenizerJson(parseJson(text));
      return new ClipTokenizer(vocabulary, merges);
    });
  }

  /** Hugging Face slow-tokenizer files' text. Errors name whichever file is at fault. */
  static fromVocabJsonAndMergesText(vocabText: string, mergesText: string, vocabFile = 'vocab.json', mergesFile = 'merges.txt'): ClipTokenizer {
    const vocabulary = blamingFile(vocabFile, () => vocabularyFromJson(parseJson(vocabText), 'the vocabulary'));
    const merges = blamingFile(mergesFile, () => parseMergesText(mergesText));
    // Each file parsed; whether they fit together is on the pair.
    return blamingFile(`${vocabFile} (with ${mergesFile})`, () => new ClipTokenizer(vocabulary, merges));
  }

  /** OpenAI's `bpe_simple_vocab_16e6.txt`, already un-gzipped. */
  static fromOpenAiBpeText(text: string, file = 'bpe_simple_vocab_16e6.txt'): ClipTokenizer {
    return blamingFile(file, () => {
      const { vocabulary, merges } = parseOpenAiBpe(text);
      return new ClipTokenizer(vocabulary, merges);
    });
  }

  /** From an in-memory vocabulary (token -> id) and merges (in rank order, as pairs or "a b" strings). */
  static fromVocabAndMerges(
    vocabulary: ReadonlyMap<string, number> | Readonly<Record<string, number>>,
    merges: readonly (MergePair | string)[],
  ): ClipTokenizer {
    const entries = vocabulary instanceof Map ? Object.fromEntries(vocabulary) : vocabulary;
    const vocabularyMap = vocabularyFromJson(entries, 'the vocabulary'); // a checked copy
    const pairs = merges.map((merge, index) => (typeof merge === 'string' ? parseMergeLine(merge, index + 1) : merge));
    return new ClipTokenizer(vocabularyMap, pairs);
  }

  /** BPE ids of `text`, without start/end tokens. A literal `<|endoftext|>` in the text becomes the end token, as in OpenAI's. */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const [piece] of cleanText(text).matchAll(PIECE_PATTERN)) {
      for (const id of this.encodePiece(piece)) ids.push(id);
    }
    return ids;
  }

  /**
   * `[start, ...ids, end]` zero padded to `contextLength`. A text with more than
   * `contextLength - 2` BPE ids keeps its first `contextLength - 2` ids and
   * still ends with the end token (open_clip's `truncate=True`; OpenAI's
   * `clip.tokenize` raises instead).
   */
  tokenize(text: string, contextLength: number = this.contextLength): Int32Array {
    checkContextLength(contextLength);
    const row = new Int32Array(contextLength);
    this.writeRow(text, row);
    return row;
  }

  /** `tokenize` for many texts into one row-major [texts.length, contextLength] buffer. */
  tokenizeBatch(texts: readonly string[], contextLength: number = this.contextLength): TokenBatch {
    checkContextLength(contextLength);
    const ids = new Int32Array(texts.length * contextLength);
    texts.forEach((text, row) => this.writeRow(text, ids.subarray(row * contextLength, (row + 1) * contextLength)));
    return { ids, count: texts.length, contextLength };
  }

  /**
   * Text back from ids, for debugging: start tokens are skipped and decoding
   * stops at the first end token (so padded rows decode cleanly); word ends
   * become spaces, trailing space trimmed.
   */
  decode(ids: Iterable<number>): string {
    const bytes: number[] = [];
    for (const id of ids) {
      if (id === this.endToken) break;
      if (id === this.startToken) continue;
      this.idToToken ??= new Map(Array.from(this.tokenToId, ([token, tokenId]): [number, string] => [tokenId, token]));
      const token = this.idToToken.get(id);
      if (token === undefined) throw new RangeError(`Token id ${id} is not in the vocabulary`);
      const endsWord = token.endsWith(END_OF_WORD);
      const body = endsWord ? token.slice(0, -END_OF_WORD.length) : token;
      for (const symbol of body) {
        const byte = SYMBOL_TO_BYTE.get(symbol);
        if (byte !== undefined) bytes.push(byte);
        else bytes.push(...utf8Encoder.encode(symbol)); // not a byte symbol: only in hand-made vocabularies
      }
      if (endsWord) bytes.push(0x20);
    }
    return new TextDecoder().decode(new Uint8Array(bytes)).trimEnd();
  }

  private writeRow(text: string, row: Int32Array): void {
    const ids = this.encode(text);
    const kept = Math.min(ids.length, row.length - 2);
    row.fill(0);
    row[0] = this.startToken;
    for (let i = 0; i < kept; i++) row[i + 1] = ids[i];
    row[kept + 1] = this.endToken;
  }

  /** Ids of one piece of cleaned text, cached by the piece itself so a hit skips UTF-8 encoding too. */
  private encodePiece(piece: string): readonly number[] {
    const cached = this.pieceCache.get(piece);
    if (cached !== undefined) return cached;
    const ids = this.bytePairEncode(toByteSymbols(piece));
    if (this.pieceCache.size >= PIECE_CACHE_LIMIT) this.resetPieceCache();
    this.pieceCache.set(piece, ids);
    return ids;
  }

  /** BPE of one byte-level word: merge the lowest-ranked adjacent pair until none is ranked. */
  private bytePairEncode(word: string): number[] {
    let symbols = Array.from(word);
    symbols[symbols.length - 1] += END_OF_WORD;
    while (symbols.length > 1) {
      let bestRank = Infinity;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.mergeRanks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) bestRank = rank;
      }
      if (bestRank === Infinity) break;
      const [first, second] = this.merges[bestRank];
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === first && symbols[i + 1] === second) {
          merged.push(first + second);
          i++;
        } else {
          merged.push(symbols[i]);
        }
      }
      symbols = merged;
    }
    // Every symbol is in the vocabulary: checkCoverage verified bytes and merge results.
    return symbols.map((symbol) => this.tokenToId.get(symbol)!);
  }

  /** Empties the piece cache but for the special tokens, which BPE must never split (OpenAI seeds its cache alike). */
  private resetPieceCache(): void {
    this.pieceCache.clear();
    this.pieceCache.set(START_OF_TEXT, [this.startToken]);
    this.pieceCache.set(END_OF_TEXT, [this.endToken]);
  }

  private requireToken(token: string): number {
    const id = this.tokenToId.get(token);
    if (id === undefined) throw new Error(`the vocabulary has no ${token} token`);
    return id;
  }

  /** Fails at load time, rather than mid-encode, if BPE could produce a symbol without an id. */
  private checkCoverage(): void {
    for (const symbol of BYTE_SYMBOLS) {
      for (const token of [symbol, symbol + END_OF_WORD]) {
        if (!this.tokenToId.has(token)) throw new Error(`the vocabulary lacks the byte symbol ${JSON.stringify(token)}`);
      }
    }
    this.merges.forEach(([first, second], rank) => {
      if (!this.tokenToId.has(first + second)) {
        throw new Error(`merge ${rank + 1} ("${first} ${second}") makes ${JSON.stringify(first + second)}, which is not in the vocabulary`);
      }
    });
  }
}

function checkContextLength(contextLength: number): void {
  if (!Number.isInteger(contextLength) || contextLength < 2) {
    throw new RangeError(`contextLength must be an integer >= 2 (room for the start and end tokens), got ${contextLength}`);
  }
}
