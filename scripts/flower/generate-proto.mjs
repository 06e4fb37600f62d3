// Regenerates src/flower/proto/ from the pinned flwr wheel in <repo>/.venv:
//   1. the wheel's *_pb2.py modules are asked for their embedded descriptors
//      (extract_fleet_descriptors.py) → src/flower/proto/flwr-fleet.binpb, committed so
//      the generated code can be checked against its exact input;
//   2. `buf generate` runs protoc-gen-es (v2) on that descriptor set → *_pb.ts.
// Run with `npm run flower:proto` after changing the pinned Flower version.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const python = path.join(root, '.venv', 'bin', 'python');
if (!existsSync(python)) {
  console.error(`No Python venv with flwr at ${python}: create it (pip install flwr==<pinned>) first.`);
  process.exit(1);
}
const outDir = path.join(root, 'src', 'flower', 'proto');
const image = path.join(outDir, 'flwr-fleet.binpb');
execFileSync(python, [path.join(root, 'scripts', 'flower', 'extract_fleet_descriptors.py'), image], { stdio: 'inherit' });

rmSync(path.join(outDir, 'flwr'), { recursive: true, force: true });
const template = JSON.stringify({
  version: 'v2',
  plugins: [{
    local: path.join(root, 'node_modules', '.bin', 'protoc-gen-es'),
    out: outDir,
    // .js import suffixes because the project compiles with module NodeNext.
    opt: ['target=ts', 'import_extension=js'],
  }],
});
execFileSync(path.join(root, 'node_modules', '.bin', 'buf'), ['generate', image, '--template', template], {
  stdio: 'inherit',
  cwd: root,
});
console.log(`generated TypeScript under ${path.relative(root, outDir)}/flwr/proto/`);
