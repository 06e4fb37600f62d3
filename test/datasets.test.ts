// Dataset readers on small datasets made here, in CoOp's layouts (split_zhou
// JSON; FGVCAircraft's text lists) and as plain image folders; every kind of
// bad input and its message; few-shot sampling as CoOp draws it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';

import { loadDataset } from '../src/data/load-dataset.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { readFgvcAircraft } from '../src/data/fgvc-aircraft.js';
import { COOP_DATASETS, findCoopDataset } from '../src/data/coop-datasets.js';
import { BadEntriesError } from '../src/data/bad-entries.js';
import { fewShotIndices, sampleShots } from '../src/data/few-shot.js';
import { PythonRandom } from '../src/data/python-random.js';

const tmp = (): string => mkdtempSync(path.join(tmpdir(), 'pfp-data-'));

function touch(file: string, bytes: string | Uint8Array = ''): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, bytes);
}

type Entry = [string, number, string];

/** A CoOp Caltech101 folder under `root`: the classes' images (empty files) and the split file. */
function makeCaltech(root: string, split: { train: Entry[]; val: Entry[]; test: Entry[] }, extra: Entry[] = []): string {
  const folder = path.join(root, 'caltech-101');
  for (const [rel] of [...split.train, ...split.val, ...split.test, ...extra]) touch(path.join(folder, '101_ObjectCategories', rel));
  writeFileSync(path.join(folder, 'split_zhou_Caltech101.json'), JSON.stringify(split));
  return folder;
}

/** Three classes: label 0 "accordion", 1 "airplane" (folder airplanes, renamed as CoOp does), 2 "face" (folder Faces). */
function caltechSplit(): { train: Entry[]; val: Entry[]; test: Entry[] } {
  const classes: [string, string][] = [['accordion', 'accordion'], ['airplanes', 'airplane'], ['Faces', 'face']];
  const list = (from: number, to: number): Entry[] =>
    classes.flatMap(([dir, name], label) => Array.from({ length: to - from }, (_, i): Entry => [`${dir}/image_${String(from + i + 1).padStart(4, '0')}.jpg`, label, name]));
  return { train: list(0, 4), val: list(4, 5), test: list(5, 7) };
}

const warnings = (): { warn: (m: string) => void; messages: string[] } => {
  const messages: string[] = [];
  return { warn: (m) => messages.push(m), messages };
};

test('registry: the ten CoOp datasets with CoOp folder, image-folder and split-file names', () => {
  assert.equal(COOP_DATASETS.length, 10);
  const byName = Object.fromEntries(COOP_DATASETS.map((d) => [d.name, d]));
  assert.deepEqual(
    COOP_DATASETS.map((d) => [d.folder, d.imageDir, d.splitFile ?? null]),
    [
      ['caltech-101', '101_ObjectCategories', 'split_zhou_Caltech101.json'],
      ['oxford_pets', 'images', 'split_zhou_OxfordPets.json'],
      ['oxford_flowers', 'jpg', 'split_zhou_OxfordFlowers.json'],
      ['food-101', 'images', 'split_zhou_Food101.json'],
      ['dtd', 'images', 'split_zhou_DescribableTextures.json'],
      ['ucf101', 'UCF-101-midframes', 'split_zhou_UCF101.json'],
      ['eurosat', '2750', 'split_zhou_EuroSAT.json'],
      ['stanford_cars', '', 'split_zhou_StanfordCars.json'],
      ['fgvc_aircraft', 'images', null],
      ['sun397', 'SUN397', 'split_zhou_SUN397.json'],
    ],
  );
  for (const alias of ['caltech101', 'Caltech-101', 'oxford_pets', 'OxfordPets', 'flowers102', 'DTD', 'describable_textures', 'fgvc_aircraft', 'StanfordCars', 'sun397']) {
    assert.ok(findCoopDataset(alias), alias);
  }
  assert.equal(findCoopDataset('flowers102'), byName.OxfordFlowers);
  assert.equal(findCoopDataset('imagenet'), undefined);
});

test('CoOp Caltech101: by name under --root and by its folder; order, class names, paths and fingerprint as the split file gives them', async () => {
  const root = tmp();
  try {
    const split = caltechSplit();
    const folder = makeCaltech(root, split);
    const byName = await loadDataset('caltech101', { root });
    const byFolder = await loadDataset(folder);
    const rootIsFolder = await loadDataset('Caltech101', { root: folder });
    for (const d of [byName, byFolder, rootIsFolder]) {
      assert.equal(d.name, 'Caltech101');
      assert.equal(d.root, folder);
      assert.deepEqual(d.classnames, ['accordion', 'airplane', 'face']);
      assert.deepEqual(d.train.map((x) => [x.relativePath, x.label]), split.train.map(([p, l]) => [p, l]));
      assert.deepEqual(d.test.map((x) => x.relativePath), split.test.map(([p]) => p));
      assert.equal(d.val.length, 3);
      assert.equal(d.train[0].path, path.join(folder, '101_ObjectCategories', 'accordion', 'image_0001.jpg'));
      assert.deepEqual(d.skipped, []);
    }
    // sha256sum of the split file.
    assert.equal(byName.fingerprint, createHash('sha256').update(readFileSync(path.join(folder, 'split_zhou_Caltech101.json'))).digest('hex'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('CoOp OxfordPets and StanfordCars (images at the dataset folder\'s root) layouts', async () => {
  const root = tmp();
  try {
    const pets = path.join(root, 'oxford_pets');
    const petSplit = {
      train: [['Abyssinian_1.jpg', 0, 'abyssinian'], ['beagle_1.jpg', 1, 'beagle'], ['Abyssinian_2.jpg', 0, 'abyssinian']],
      val: [['beagle_2.jpg', 1, 'beagle']],
      test: [['beagle_3.jpg', 1, 'beagle'], ['Abyssinian_3.jpg', 0, 'abyssinian']],
    };
    for (const list of Object.values(petSplit)) for (const [rel] of list) touch(path.join(pets, 'images', rel as string));
    touch(path.join(pets, 'split_zhou_OxfordPets.json'), JSON.stringify(petSplit));
    const d = await loadDataset('pets', { root });
    assert.equal(d.name, 'OxfordPets');
    assert.deepEqual(d.classnames, ['abyssinian', 'beagle']);
    assert.equal(d.test[1].path, path.join(pets, 'images', 'Abyssinian_3.jpg'));

    const cars = path.join(root, 'stanford_cars');
    const carSplit = { train: [['cars_train/00001.jpg', 0, '2012 AM General Hummer SUV']], val: [], test: [['cars_test/00001.jpg', 0, '2012 AM General Hummer SUV']] };
    touch(path.join(cars, 'cars_train', '00001.jpg'));
    touch(path.join(cars, 'cars_test', '00001.jpg'));
    touch(path.join(cars, 'split_zhou_StanfordCars.json'), JSON.stringify(carSplit));
    const c = await loadDataset(cars);
    assert.equal(c.name, 'StanfordCars');
    assert.equal(c.train[0].path, path.join(cars, 'cars_train', '00001.jpg'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("FGVCAircraft's text lists: variants.txt gives labels, images/<id>.jpg; CoOp's renamed folder or the archive's data/", async () => {
  const root = tmp();
  try {
    const variants = ['707-320', 'A300B4', 'Cessna 172'];
    const lists = {
      train: ['1025794 707-320', '1340192 Cessna 172', '0056978 A300B4', '2233445 707-320'],
      val: ['0062765 Cessna 172', '1111111 A300B4', '2222222 707-320'],
      test: ['0064113 A300B4', '0123456 707-320', '0666666 Cessna 172'],
    };
    const write = (dir: string): void => {
      touch(path.join(dir, 'variants.txt'), variants.join('\n') + '\n');
      for (const [split, lines] of Object.entries(lists)) {
        touch(path.join(dir, `images_variant_${split}.txt`), lines.join('\n') + '\n');
        for (const line of lines) touch(path.join(dir, 'images', `${line.split(' ')[0]}.jpg`));
      }
    };
    const folder = path.join(root, 'fgvc_aircraft');
    write(folder);
    const d = await loadDataset('fgvc_aircraft', { root });
    assert.equal(d.name, 'FGVCAircraft');
    assert.deepEqual(d.classnames, variants);
    assert.deepEqual(d.train.map((x) => [x.relativePath, x.label]), [['1025794.jpg', 0], ['1340192.jpg', 2], ['0056978.jpg', 1], ['2233445.jpg', 0]]);
    assert.equal(d.test[2].path, path.join(folder, 'images', '0666666.jpg'));

    const unrenamed = path.join(root, 'fgvc-aircraft-2013b');
    write(path.join(unrenamed, 'data'));
    const e = await loadDataset(unrenamed);
    assert.equal(e.fingerprint, d.fingerprint);
    assert.deepEqual(e.train.map((x) => x.label), d.train.map((x) => x.label));

    // A variant that variants.txt does not list: an error naming the list file and line.
    touch(path.join(folder, 'images_variant_test.txt'), [...lists.test, '0777777 Boeing 999'].join('\n'));
    touch(path.join(folder, 'images', '0777777.jpg'));
    await assert.rejects(readFgvcAircraft(folder), (err: Error) => {
      assert.match(err.message, /^1 bad entry in .*fgvc_aircraft\/images_variant_test\.txt:\n  line 4 "0777777\.jpg": variant "Boeing 999" is not in .*variants\.txt/);
      return true;
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('image folder: sorted class folders, underscores as spaces, CoOp\'s seeded 50/20/30 split with Python\'s round', async () => {
  const root = tmp();
  try {
    const folder = path.join(root, 'my-animals');
    const counts = { cat_like: 5, dog: 7, zebra: 4 };
    for (const [cls, n] of Object.entries(counts)) for (let i = 0; i < n; i++) touch(path.join(folder, cls, `img${String(i).padStart(2, '0')}.png`));
    touch(path.join(folder, 'dog', 'notes.txt')); // not an image
    touch(path.join(folder, '.hidden', 'x.png')); // hidden: not a class
    const d = await loadDataset(folder);
    assert.equal(d.name, 'my-animals');
    assert.deepEqual(d.classnames, ['cat like', 'dog', 'zebra']);
    // Expected lists printed by CPython 3.11 running CoOp's read_and_split_data rule on sorted file names with random.seed(1).
    assert.deepEqual(d.train.map((x) => x.relativePath), ['cat_like/img02.png', 'cat_like/img03.png', 'dog/img01.png', 'dog/img02.png', 'dog/img00.png', 'dog/img04.png', 'zebra/img02.png', 'zebra/img01.png']);
    assert.deepEqual(d.val.map((x) => x.relativePath), ['cat_like/img04.png', 'dog/img05.png', 'zebra/img00.png']);
    assert.deepEqual(d.test.map((x) => x.relativePath), ['cat_like/img00.png', 'cat_like/img01.png', 'dog/img06.png', 'dog/img03.png', 'zebra/img03.png']);
    assert.deepEqual(d.test.map((x) => x.label), [0, 0, 1, 1, 2]);
    // The fingerprint follows the listing and the split's parameters.
    const again = await readImageFolder(folder);
    assert.equal(again.fingerprint, d.fingerprint);
    assert.notEqual((await readImageFolder(folder, { seed: 2 })).fingerprint, d.fingerprint);

    // Too few images for every part: an error naming the class folder.
    touch(path.join(folder, 'yak', 'only.png'));
    await assert.rejects(readImageFolder(folder), /yak: 1 image cannot be split 50% train \/ 20% val \/ rest test/);
    rmSync(path.join(folder, 'yak'), { recursive: true });

    // A split.json in CoOp's format takes over.
    const split = { train: [['dog/img00.png', 0, 'dog'], ['zebra/img00.png', 1, 'zebra']], val: [], test: [['dog/img01.png', 0, 'dog'], ['zebra/img01.png', 1, 'zebra']] };
    touch(path.join(folder, 'split.json'), JSON.stringify(split));
    const s = await loadDataset(folder);
    assert.deepEqual(s.classnames, ['dog', 'zebra']);
    assert.deepEqual(s.test.map((x) => x.relativePath), ['dog/img01.png', 'zebra/img01.png']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('dataset resolution errors say what was expected', async () => {
  const root = tmp();
  try {
    await assert.rejects(loadDataset('caltech101'), /--dataset caltech101 names CoOp's Caltech101: give --root/);
    await assert.rejects(loadDataset('caltech101', { root }), /no Caltech101 in .*caltech-101 or .*; expected caltech-101\/ with 101_ObjectCategories\/ and split_zhou_Caltech101\.json/);
    await assert.rejects(loadDataset(path.join(root, 'nowhere')), /neither a known dataset \(Caltech101, OxfordPets, .*\) nor a folder/);
    touch(path.join(root, 'caltech-101', '101_ObjectCategories', 'accordion', 'image_0001.jpg'));
    await assert.rejects(loadDataset(path.join(root, 'caltech-101')), /looks like CoOp's Caltech101 folder but lacks its list files/);
    touch(path.join(root, 'empty-folder', 'readme.txt'));
    await assert.rejects(loadDataset(path.join(root, 'empty-folder')), /no class sub-folders/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/** Loads a Caltech101 whose split file is `split`, expecting failure; returns the error. */
async function failure(split: unknown, options: Parameters<typeof loadDataset>[1] = {}, prepare?: (folder: string) => void): Promise<Error> {
  const root = tmp();
  try {
    const good = caltechSplit();
    const folder = makeCaltech(root, good);
    writeFileSync(path.join(folder, 'split_zhou_Caltech101.json'), typeof split === 'string' ? split : JSON.stringify(split));
    prepare?.(folder);
    let error: Error | undefined;
    await loadDataset('caltech101', { root, ...options }).catch((err: Error) => (error = err));
    assert.ok(error, 'expected the load to fail');
    assert.ok(error.message.includes(path.join(folder, 'split_zhou_Caltech101.json')), `names the split file: ${error.message}`);
    return error;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test('bad input: a split file naming a missing image', async () => {
  const split = caltechSplit();
  split.test[3] = ['airplanes/image_0099.jpg', 1, 'airplane'];
  const error = await failure(split);
  assert.ok(error instanceof BadEntriesError);
  assert.match(error.message, /test\[3\] "airplanes\/image_0099\.jpg": image file not found: .*101_ObjectCategories\/airplanes\/image_0099\.jpg/);
  assert.match(error.message, /skip-bad/);
});

test('bad input: an image deleted after the split was made', async () => {
  const error = await failure(caltechSplit(), {}, (folder) => rmSync(path.join(folder, '101_ObjectCategories', 'Faces', 'image_0002.jpg')));
  assert.match(error.message, /1 bad entry in .*: *\n *.*train\[9\] "Faces\/image_0002\.jpg": image file not found/);
});

test('bad input: a label out of range (above the dataset\'s class count, or negative)', async () => {
  const split = caltechSplit();
  split.train[1] = [split.train[1][0], 100, 'accordion'];
  split.val[0] = [split.val[0][0], -1, 'accordion'];
  const error = await failure(split);
  assert.match(error.message, /train\[1\] "accordion\/image_0002\.jpg": label 100 out of range \(Caltech101 has 100 classes, labels 0…99\)/);
  assert.match(error.message, /val\[0\] "accordion\/image_0005\.jpg": label -1 out of range/);
});

test('bad input: a class-name mismatch is reported on the entry that disagrees with the rest', async () => {
  const split = caltechSplit();
  split.test[4] = [split.test[4][0], 2, 'airplane']; // a Faces image named "airplane" under label 2 ("face")
  const error = await failure(split);
  assert.match(error.message, /test\[4\] "Faces\/image_0006\.jpg": label 2 is named "airplane" here but "face" in 6 other entries \(first train\[8\]\)/);
});

test('bad input: malformed entries, bad JSON, missing lists, label gaps', async () => {
  const split = caltechSplit() as { train: unknown[]; val: unknown[]; test: unknown[] };
  split.train[0] = ['accordion/image_0001.jpg', '0', 'accordion'];
  split.train[2] = ['accordion/image_0003.jpg', 0];
  let error = await failure(split);
  assert.match(error.message, /train\[0\] "accordion\/image_0001\.jpg": label must be an integer, got "0"/);
  assert.match(error.message, /train\[2\] "accordion\/image_0003\.jpg": expected \[image path, label, class name\]/);

  error = await failure('{"train": [');
  assert.match(error.message, /not valid JSON/);
  error = await failure({ train: [], val: [] });
  assert.match(error.message, /"test" must be a list/);

  const gap = caltechSplit();
  for (const list of [gap.train, gap.val, gap.test]) for (const e of list) if (e[1] === 1) e[1] = 3;
  error = await failure(gap);
  assert.match(error.message, /no entry has label 1, yet labels run to 3/);
});

test('bad input: a corrupt JPEG is found with checkImages "header"; a truncated one with "full"', async () => {
  const root = tmp();
  try {
    const folder = path.join(root, 'photos');
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 10, g: 200, b: 30 } } }).png().toBuffer();
    const noise = Buffer.alloc(128 * 128 * 3);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
    const jpeg = await sharp(noise, { raw: { width: 128, height: 128, channels: 3 } }).jpeg().toBuffer();
    for (const cls of ['a', 'b']) for (let i = 0; i < 4; i++) touch(path.join(folder, cls, `${i}.png`), png);
    touch(path.join(folder, 'b', 'garbage.jpg'), 'this is not a JPEG');
    touch(path.join(folder, 'a', 'truncated.jpg'), jpeg.subarray(0, jpeg.length >> 1));

    // Existence only: both pass (nothing is decoded).
    const unchecked = await readImageFolder(folder);
    assert.equal(unchecked.train.length + unchecked.val.length + unchecked.test.length, 10);

    await assert.rejects(readImageFolder(folder, { checkImages: 'header' }), (err: Error) => {
      assert.match(err.message, new RegExp(`1 bad entry in ${folder}:`));
      assert.match(err.message, /(train|val|test)\[\d\] "b\/garbage\.jpg": not a readable image \(.*unsupported image format.*\)/);
      return true;
    });
    await assert.rejects(readImageFolder(folder, { checkImages: 'full' }), (err: Error) => {
      assert.match(err.message, /2 bad entries/);
      // (libvips's own reason varies: "premature end of JPEG image", or "Unknown error" when decoded in parallel)
      assert.match(err.message, /"a\/truncated\.jpg": not a readable image \(/);
      return true;
    });

    const { warn, messages } = warnings();
    const skipped = await readImageFolder(folder, { checkImages: 'full', skipBad: true, warn });
    assert.equal(skipped.skipped.length, 2);
    assert.equal(skipped.train.length + skipped.val.length + skipped.test.length, 8);
    assert.match(messages.join('\n'), /warning: skipping 2 bad entries/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('skip-bad: bad entries dropped with a warning and counted; the fingerprint records the skips', async () => {
  const root = tmp();
  try {
    const split = caltechSplit();
    split.train[1] = [split.train[1][0], 100, 'accordion'];
    split.test[0] = ['accordion/missing.jpg', 0, 'accordion'];
    split.test[5] = [split.test[5][0], 2, 'airplane'];
    const folder = makeCaltech(root, split);
    rmSync(path.join(folder, '101_ObjectCategories', 'accordion', 'missing.jpg'));
    const { warn, messages } = warnings();
    const d = await loadDataset('caltech101', { root, skipBad: true, warn });
    assert.equal(d.skipped.length, 3);
    assert.deepEqual(d.skipped.map((b) => b.where), ['train[1]', 'test[0]', 'test[5]']);
    assert.equal(d.train.length, split.train.length - 1);
    assert.equal(d.test.length, split.test.length - 2);
    assert.equal(messages.length, 1);
    assert.match(messages[0], /warning: skipping 3 bad entries in .*split_zhou_Caltech101\.json:/);
    assert.match(messages[0], /test\[0\] "accordion\/missing\.jpg": image file not found/);
    const bytes = readFileSync(path.join(folder, 'split_zhou_Caltech101.json'));
    assert.notEqual(d.fingerprint, createHash('sha256').update(bytes).digest('hex'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("few-shot: CoOp's generate_fewshot_dataset draws (sample, or choices for a small class), val with min(K, 4)", () => {
  const train = [2, 0, 1, 1, 0, 2, 2, 0, 1, 2, 0, 3, 1, 2].map((label) => ({ path: '', relativePath: '', label }));
  const val = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1].map((label) => ({ path: '', relativePath: '', label }));
  // Expected: CPython 3.11, random.seed(3), Dassl's generate_fewshot_dataset on these labels (train K, then val min(K, 4)).
  assert.deepEqual(fewShotIndices({ train, val }, { shots: 3, seed: 3 }), {
    train: [5, 13, 9, 10, 7, 1, 2, 3, 8, 11, 11, 11],
    val: [8, 4, 0, 9, 1, 5, 6, 6, 6, 7, 7, 3],
  });
  assert.deepEqual(fewShotIndices({ train, val }, { shots: 5, seed: 3 }), {
    train: [5, 13, 9, 6, 0, 7, 10, 4, 7, 1, 8, 8, 8, 3, 12, 11, 11, 11, 11, 11],
    val: [8, 0, 8, 0, 9, 9, 1, 5, 6, 2, 6, 2, 7, 7, 7, 3],
  });
  // Without repetition a small class keeps what it has; without val, the train draws are unchanged.
  assert.deepEqual(fewShotIndices({ train, val }, { shots: 3, seed: 3, val: false }).train, [5, 13, 9, 10, 7, 1, 2, 3, 8, 11, 11, 11]);
  assert.deepEqual(sampleShots(train.map((t) => t.label), 3, new PythonRandom(3), { repeat: false }).slice(-1), [11]);
  assert.throws(() => sampleShots([0], 0, new PythonRandom(1)), /positive integer/);
});
