// CLIP tokenizer against goldens made by an independent Python BPE encoder
// (shared/reference/bpe_tokenizer.py), in all three vocabulary forms.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ClipTokenizer, cleanText, htmlUnescape } from '../src/clip/tokenizer.js';
import { loadTokenizer, tokenizerFromOpenAiBpe, tokenizerFromVocabJsonAndMergesTxt } from '../src/clip/tokenizer-file.js';
import { fixture } from './shared.js';

interface GoldenCase { text: string; ids: number[]; dataset?: string }
interface Goldens { sot: number; eot: number; context_length: number; cases: GoldenCase[] }

const FIXTURES = fixture('clip-tokenizer');
const goldens: Goldens = JSON.parse(await readFile(path.join(FIXTURES, 'goldens.json'), 'utf8'));

let scratch: string;

/** A Hugging Face tokenizers file built from the fixture's vocab.json + merges.txt. */
async function writeTokenizerJson(dir: string, mergeStyle: 'strings' | 'pairs'): Promise<void> {
  const vocab = JSON.parse(await readFile(path.join(FIXTURES, 'vocab.json'), 'utf8'));
  const mergeLines = (await readFile(path.join(FIXTURES, 'merges.txt'), 'utf8'))
    .split('\n')
    .slice(1)
    .filter((line) => line !== '');
  const merges = mergeStyle === 'strings' ? mergeLines : mergeLines.map((line) => line.split(' '));
  const tokenizerJson = {
    version: '1.0',
    added_tokens: [
      { id: 49406, content: '<|startoftext|>', special: true },
      { id: 49407, content: '<|endoftext|>', special: true },
    ],
    model: { type: 'BPE', dropout: null, unk_token: '<|endoftext|>', end_of_word_suffix: '</w>', vocab, merges },
  };
  await writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
}

const scratchDir = (name: string): Promise<string> => mkdtemp(path.join(scratch, `${name}-`));

before(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'pfedprompt-tokenizer-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

it('has the goldens it expects', () => {
  assert.equal(goldens.cases.length, 1314);
  assert.equal(goldens.sot, 49406);
  assert.equal(goldens.eot, 49407);
});

const FORMS: { name: string; load: () => Promise<ClipTokenizer> }[] = [
  { name: 'OpenAI bpe_simple_vocab_16e6.txt.gz', load: () => tokenizerFromOpenAiBpe(path.join(FIXTURES, 'bpe_simple_vocab_16e6.txt.gz')) },
  {
    name: 'Hugging Face vocab.json + merges.txt',
    load: () => tokenizerFromVocabJsonAndMergesTxt(path.join(FIXTURES, 'vocab.json'), path.join(FIXTURES, 'merges.txt')),
  },
  {
    name: 'Hugging Face tokenizer.json, merges as strings',
    load: async () => {
      const dir = await scratchDir('hf-strings');
      await writeTokenizerJson(dir, 'strings');
      return loadTokenizer(dir);
    },
  },
  {
    name: 'Hugging Face tokenizer.json, merges as pairs',
    load: async () => {
      const dir = await scratchDir('hf-pairs');
      await writeTokenizerJson(dir, 'pairs');
      return loadTokenizer(dir);
    },
  },
];

for (const form of FORMS) {
  describe(`goldens from ${form.name}`, () => {
    let tokenizer: ClipTokenizer;
    before(async () => {
      tokenizer = await form.load();
    });

    it('reads the special tokens from the vocabulary', () => {
      assert.equal(tokenizer.startToken, goldens.sot);
      assert.equal(tokenizer.endToken, goldens.eot);
      assert.equal(tokenizer.vocabularySize, 49408);
      assert.equal(tokenizer.contextLength, goldens.context_length);
    });

    it('matches every golden case', () => {
      const mismatches = goldens.cases.filter((c) => JSON.stringify(tokenizer.encode(c.text)) !== JSON.stringify(c.ids));
      assert.deepEqual(
        mismatches.slice(0, 5).map((c) => ({ text: c.text, expected: c.ids, actual: tokenizer.encode(c.text) })),
        [],
        `${mismatches.length} of ${goldens.cases.length} cases differ`,
      );
    });

    it('gives the same ids a second time (piece cache)', () => {
      for (const c of goldens.cases.slice(0, 50)) assert.deepEqual(tokenizer.encode(c.text), c.ids);
    });
  });
}

describe('fromDirectory', () => {
  it('prefers tokenizer.json, then vocab.json + merges.txt, then the OpenAI file', async () => {
    const dir = await scratchDir('openai-only');
    await copyFile(path.join(FIXTURES, 'bpe_simple_vocab_16e6.txt.gz'), path.join(dir, 'bpe_simple_vocab_16e6.txt.gz'));
    assert.deepEqual((await loadTokenizer(dir)).encode('a photo of a dog.'), [320, 1125, 539, 320, 1929, 269]);

    // A broken vocab.json beside the gz proves the HF pair is chosen first.
    await writeFile(path.join(dir, 'vocab.json'), '{"not": "a vocabulary"');
    await writeFile(path.join(dir, 'merges.txt'), '#version: 0.2\n');
    await assert.rejects(loadTokenizer(dir), /vocab\.json/);

    await writeTokenizerJson(dir, 'strings');
    assert.deepEqual((await loadTokenizer(dir)).encode('a photo of a dog.'), [320, 1125, 539, 320, 1929, 269]);
  });

  it('names the directory and the files it looked for when none is there', async () => {
    const dir = await scratchDir('empty');
    await writeFile(path.join(dir, 'README.md'), 'nothing here');
    await assert.rejects(loadTokenizer(dir), (error: Error) => {
      assert.ok(error.message.includes(dir), error.message);
      for (const name of ['tokenizer.json', 'vocab.json', 'merges.txt', 'bpe_simple_vocab_16e6.txt.gz']) {
        assert.ok(error.message.includes(name), `${name} missing from: ${error.message}`);
      }
      return true;
    });
  });

  it('says when the directory does not exist', async () => {
    await assert.rejects(loadTokenizer(path.join(scratch, 'nowhere')), /nowhere \(no such directory\)/);
  });

  it('says which half of the Hugging Face pair is missing', async () => {
    const dir = await scratchDir('half-pair');
    await copyFile(path.join(FIXTURES, 'vocab.json'), path.join(dir, 'vocab.json'));
    await assert.rejects(loadTokenizer(dir), /found vocab\.json without merges\.txt/);
  });

  it('names a corrupt vocab.json', async () => {
    const dir = await scratchDir('corrupt-vocab');
    await writeFile(path.join(dir, 'vocab.json'), '{"a": 0, "b": ');
    await copyFile(path.join(FIXTURES, 'merges.txt'), path.join(dir, 'merges.txt'));
    await assert.rejects(loadTokenizer(dir), (error: Error) => {
      assert.ok(error.message.includes(path.join(dir, 'vocab.json')), error.message);
      assert.match(error.message, /not valid JSON/);
      return true;
    });
  });

  it('names a vocab.json that parses but lacks tokens the merges need', async () => {
    const dir = await scratchDir('small-vocab');
    await writeFile(path.join(dir, 'vocab.json'), JSON.stringify({ a: 0, '<|startoftext|>': 1, '<|endoftext|>': 2 }));
    await writeFile(path.join(dir, 'merges.txt'), '#version: 0.2\n');
    await assert.rejects(loadTokenizer(dir), (error: Error) => {
      assert.ok(error.message.includes(path.join(dir, 'vocab.json')), error.message);
      assert.match(error.message, /lacks the byte symbol/);
      return true;
    });
  });

  it('names a corrupt gz and a malformed tokenizer.json', async () => {
    const gzDir = await scratchDir('corrupt-gz');
    await writeFile(path.join(gzDir, 'bpe_simple_vocab_16e6.txt.gz'), 'plain text, not gzip');
    await assert.rejects(loadTokenizer(gzDir), /bpe_simple_vocab_16e6\.txt\.gz.*not a gzip file/);

    const jsonDir = await scratchDir('corrupt-tokenizer-json');
    await writeFile(path.join(jsonDir, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }));
    await assert.rejects(loadTokenizer(jsonDir), /tokenizer\.json.*WordPiece/);
  });
});

describe('fromVocabAndMerges', () => {
  /** CLIP's byte alphabet in vocabulary order: printable bytes as themselves, then the rest as chr(256 + n). */
  function byteAlphabet(): string[] {
    const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    const bytes = [...Array(256).keys()];
    const remapped = bytes.filter((b) => !printable(b)).map((_, n) => String.fromCharCode(256 + n));
    return [...bytes.filter(printable).map((b) => String.fromCharCode(b)), ...remapped];
  }
  /** Ids 0-511: byte symbols alone and ending a word; then `extra` tokens; then the two special tokens. */
  function smallVocabulary(extra: string[]): Map<string, number> {
    const alphabet = byteAlphabet();
    const tokens = [...alphabet, ...alphabet.map((symbol) => symbol + '</w>'), ...extra, '<|startoftext|>', '<|endoftext|>'];
    return new Map(tokens.map((token, id) => [token, id]));
  }

  it('merges the lowest-ranked pair first', () => {
    const vocabulary = smallVocabulary(['bc</w>', 'ab', 'abc</w>']);
    const tokenizer = ClipTokenizer.fromVocabAndMerges(vocabulary, ['b c</w>', ['a', 'b'], 'ab c</w>']);
    const id = (token: string): number => vocabulary.get(token)!;
    // "b c</w>" outranks "a b", so "abc" becomes a + bc</w> and "ab c</w>" never applies.
    assert.deepEqual(tokenizer.encode('abc'), [id('a'), id('bc</w>')]);
    assert.deepEqual(tokenizer.encode('abd'), [id('ab'), id('d</w>')]);
    assert.deepEqual(tokenizer.encode('abc'), [64, 512]);
    assert.equal(tokenizer.startToken, 515);
    assert.equal(tokenizer.endToken, 516);
  });

  it('rejects merges whose result is not in the vocabulary', () => {
    assert.throws(() => ClipTokenizer.fromVocabAndMerges(smallVocabulary([]), [['a', 'b']]), /"ab", which is not in the vocabulary/);
  });
});

describe('tokenize', () => {
  let tokenizer: ClipTokenizer;
  before(async () => {
    tokenizer = await tokenizerFromOpenAiBpe(path.join(FIXTURES, 'bpe_simple_vocab_16e6.txt.gz'));
  });

  it('wraps ids in start/end tokens and zero pads to 77', () => {
    const row = tokenizer.tokenize('a photo of a dog.');
    assert.ok(row instanceof Int32Array);
    assert.equal(row.length, 77);
    assert.deepEqual([...row.subarray(0, 8)], [49406, 320, 1125, 539, 320, 1929, 269, 49407]);
    assert.ok(row.subarray(8).every((id) => id === 0));
  });

  it('gives an empty text just start and end', () => {
    const row = tokenizer.tokenize('   ');
    assert.deepEqual([...row.subarray(0, 3)], [49406, 49407, 0]);
  });

  it('honours a custom context length', () => {
    assert.deepEqual([...tokenizer.tokenize('a dog', 5)], [49406, 320, 1929, 49407, 0]);
    assert.throws(() => tokenizer.tokenize('a dog', 1), RangeError);
  });

  it('truncates a long text to its first 75 ids, then the end token', () => {
    const long = goldens.cases.find((c) => c.text.startsWith('a long caption'))!;
    assert.ok(long.ids.length > 75);
    const row = tokenizer.tokenize(long.text);
    assert.equal(row.length, 77);
    assert.equal(row[0], 49406);
    assert.deepEqual([...row.subarray(1, 76)], long.ids.slice(0, 75));
    assert.equal(row[76], 49407);
  });

  it('fits exactly 75 ids without truncation', () => {
    const text = Array.from({ length: 75 }, () => 'dog').join(' ');
    const row = tokenizer.tokenize(text);
    assert.equal(row[75], 1929);
    assert.equal(row[76], 49407);
  });

  it('batches rows into one [N, contextLength] buffer', () => {
    const texts = ['a photo of a dog.', 'a photo of a cat.', ''];
    const batch = tokenizer.tokenizeBatch(texts);
    assert.equal(batch.count, 3);
    assert.equal(batch.contextLength, 77);
    assert.equal(batch.ids.length, 3 * 77);
    texts.forEach((text, i) => assert.deepEqual([...batch.ids.subarray(i * 77, (i + 1) * 77)], [...tokenizer.tokenize(text)]));
  });

  it('keeps a literal <|endoftext|> as the end token, as OpenAI does', () => {
    assert.deepEqual(tokenizer.encode('a <|endoftext|> b <|startoftext|>'), [320, 49407, 321, 49406]);
  });

  it('decodes ids back to the cleaned text', () => {
    assert.equal(tokenizer.decode(tokenizer.tokenize('A photo of a  Café crème!')), 'a photo of a café crème !');
    assert.equal(tokenizer.decode(tokenizer.encode('emoji 🐶🐱 pets')), 'emoji 🐶🐱 pets');
  });
});

describe('text cleaning', () => {
  it('unescapes HTML entities as Python html.unescape does', () => {
    assert.equal(htmlUnescape('&amp; &lt;b&gt; &quot;q&quot; &apos;'), '& <b> "q" \'');
    assert.equal(htmlUnescape('&copy2024 &ampx &notit; &notin; &bogus;'), '©2024 &x ¬it; ∉ &bogus;');
    assert.equal(htmlUnescape('&#65;&#x42;&#X43 &#0; &#x80; &#13; &#1; &#xD800; &#x110000; &#xFFFF;'), 'ABC � € \r  � � ');
    assert.equal(htmlUnescape('&#128054;&#99999999999999999999;'), '🐶\ufffd');
  });

  it('unescapes twice, collapses whitespace and lower-cases', () => {
    assert.equal(cleanText('  &amp;lt;Tag&amp;gt;\t\u0085X\u3000Y \u001c'), '<tag> x y');
  });
});
