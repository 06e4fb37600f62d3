// The browser node's page: the person chooses their images, reads what will and will not
// leave the browser, joins and watches. All computing and all talking to the server
// happen in the Worker (worker.ts); the page only shows what the Worker reports.
//
// Leaving and coming back: while joined, localStorage holds a flag; a reload finds it and
// rejoins with the data source kept in IndexedDB (storage.ts), as the same node (its key
// is in IndexedDB too) with its personal memory.

import { NodeStorage } from './storage.js';
import { roundText, type DataSource, type Disclosure, type PageToWorker, type PhotoFile, type Progress, type WorkerToPage } from './protocol.js';

const JOINED = 'pfedprompt-joined';
const IMAGE = /\.(jpe?g|png|webp|gif|bmp)$/i;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page: no element #${id}`);
  return el as T;
};

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const send = (message: PageToWorker, transfer: Transferable[] = []): void => worker.postMessage(message, transfer);
let photos: PhotoFile[] = [];
let joined = false;
/** The last attempt to join failed: its error stays on screen after the Worker reports it left. */
let failed = false;

function log(text: string, error = false): void {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (error) item.className = 'error';
  $('log').append(item);
  item.scrollIntoView({ block: 'nearest' });
}

function setJoined(value: boolean): void {
  joined = value;
  $<HTMLButtonElement>('join').disabled = value;
  $<HTMLButtonElement>('leave').disabled = !value;
  for (const id of ['folder', 'client', 'seed', 'source-folder', 'source-world']) $<HTMLInputElement>(id).disabled = value;
}

/** The classes and counts of a picked folder: `top/class/photo.jpg` files, top folder dropped. */
function photosOf(files: readonly File[]): { photos: PhotoFile[]; classes: Map<string, number>; skipped: number } {
  const out: PhotoFile[] = [];
  const classes = new Map<string, number>();
  let skipped = 0;
  for (const file of files) {
    const parts = (file.webkitRelativePath || file.name).split('/').slice(1);
    if (parts.length !== 2 || !IMAGE.test(parts[1])) {
      skipped++;
      continue;
    }
    out.push({ path: parts.join('/'), data: file });
    classes.set(parts[0], (classes.get(parts[0]) ?? 0) + 1);
  }
  return { photos: out, classes, skipped };
}

function showFolder(files: readonly File[]): void {
  const picked = photosOf(files);
  photos = picked.photos;
  const summary = picked.classes.size === 0
    ? 'No photos found: the folder needs one sub-folder per class, with the photos inside.'
    : `${photos.length} photos in ${picked.classes.size} classes: ${[...picked.classes].map(([c, n]) => `${c} (${n})`).join(', ')}`
      + (picked.skipped ? `; ${picked.skipped} other files ignored` : '');
  $('folder-summary').textContent = summary;
  $<HTMLInputElement>('source-folder').checked = true;
}

function chosenSource(): DataSource {
  const client = Number($<HTMLInputElement>('client').value);
  if (!Number.isInteger(client) || client < 0) throw new Error('the client index must be a whole number ≥ 0');
  if ($<HTMLInputElement>('source-folder').checked) {
    if (photos.length === 0) throw new Error('choose a folder of photos first (one sub-folder per class)');
    return { kind: 'folder', files: photos, client };
  }
  const seed = Number($<HTMLInputElement>('seed').value);
  if (!Number.isInteger(seed)) throw new Error('the seed must be a whole number');
  return { kind: 'world', client, seed };
}

function showDisclosure(d: Disclosure): void {
  $('uploads').textContent = d.uploads;
  $('upload-spec').textContent = d.uploadSpec
    ? ` (${Object.entries(d.uploadSpec).map(([name, n]) => `${name}: ${n} numbers`).join(', ')})`
    : '';
  $('metrics').textContent = d.metrics.join(', ');
  $('stays').textContent = `For ${d.label}: ${d.staysOnClient}`;
  $('trains').textContent = d.trains;
}

function showProgress(p: Progress): void {
  const text = (id: string, value: string | undefined) => { if (value !== undefined) $(id).textContent = value; };
  text('run-method', p.method);
  text('round', roundText(p));
  text('ask', p.ask);
  text('loss', p.trainLoss === undefined ? undefined : p.trainLoss.toFixed(4));
  text('accuracy', p.accuracy === undefined ? undefined : `${(100 * p.accuracy).toFixed(1)} %`);
  $('bytes').textContent = formatBytes(p.bytesSent);
  $('bytes').dataset.bytes = String(p.bytesSent);
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(2)} MiB`;
}

worker.onmessage = (event: MessageEvent<WorkerToPage>) => {
  const m = event.data;
  switch (m.type) {
    case 'disclosure': {
      const select = $<HTMLSelectElement>('method');
      if (select.options.length === 0) {
        for (const { id, label } of m.methods) select.add(new Option(label, id, false, id === m.disclosure.method));
      }
      select.value = m.disclosure.method;
      showDisclosure(m.disclosure);
      break;
    }
    case 'status':
      $('status').textContent = m.text;
      log(m.text);
      break;
    case 'log':
      log(m.text);
      break;
    case 'joined':
      $('node-id').textContent = m.nodeId;
      $('status').textContent = m.restored ? 'Joined again, as the same node' : 'Joined';
      log(`joined as node ${m.nodeId}${m.restored ? ` (key kept in this browser; ${m.personalStates} personal state(s) kept)` : ' (new key)'}`);
      break;
    case 'progress':
      showProgress(m.progress);
      break;
    case 'left':
      if (!failed) $('status').textContent = 'Left (key and memory kept in this browser)';
      log('left the federation');
      setJoined(false);
      break;
    case 'error':
      failed = true;
      $('status').textContent = `Error: ${m.message}`;
      log(m.message, true);
      break;
  }
};
worker.onerror = (event) => {
  $('status').textContent = `Error: ${event.message}`;
  log(`the Worker failed: ${event.message}`, true);
};

async function join(source: DataSource): Promise<void> {
  failed = false;
  setJoined(true);
  localStorage.setItem(JOINED, '1');
  const storage = await NodeStorage.open();
  try {
    await storage.saveDataSource(source);
  } finally {
    storage.close();
  }
  send({ type: 'join', source });
}

$('folder').addEventListener('change', (e) => showFolder([...((e.target as HTMLInputElement).files ?? [])]));
$('method').addEventListener('change', (e) => send({ type: 'disclose', method: (e.target as HTMLSelectElement).value }));
$('join').addEventListener('click', () => {
  try {
    void join(chosenSource()).catch((error: Error) => { log(error.message, true); setJoined(false); });
  } catch (error) {
    $('status').textContent = (error as Error).message;
    log((error as Error).message, true);
  }
});
$('leave').addEventListener('click', () => {
  localStorage.removeItem(JOINED);
  $('status').textContent = 'Leaving…';
  send({ type: 'leave' });
});

// The method to show first: ?method=… in the address, else pFedPrompt.
send({ type: 'disclose', method: new URLSearchParams(location.search).get('method') ?? 'pfedprompt' });

// Back after a reload while joined: rejoin with the same data.
if (localStorage.getItem(JOINED) === '1') {
  void NodeStorage.open().then(async (storage) => {
    const source = await storage.dataSource();
    storage.close();
    if (!source) {
      localStorage.removeItem(JOINED);
      return;
    }
    if (source.kind === 'world') {
      $<HTMLInputElement>('source-world').checked = true;
      $<HTMLInputElement>('client').value = String(source.client);
      $<HTMLInputElement>('seed').value = String(source.seed);
    } else {
      $<HTMLInputElement>('source-folder').checked = true;
      $<HTMLInputElement>('client').value = String(source.client);
      $('folder-summary').textContent = `${source.files.length} photos kept in this browser from your last visit`;
    }
    log('rejoining after a reload');
    await join(source);
  }).catch((error: Error) => log(`could not rejoin: ${error.message}`, true));
}

// For tests and the curious: whether the node is joined.
Object.assign(globalThis, { pfedpromptPage: { get joined() { return joined; } } });
