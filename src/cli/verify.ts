import type { Command } from 'commander';
import { loadClipModel } from '../clip/node-runtime.js';
import { verifyGoldens } from '../clip/verify.js';
import { executionProviders, positiveNumber } from './options.js';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('recompute every output in a goldens file from its inputs and report the error per key; exit 1 if any relative error exceeds --tol')
    .requiredOption('--model <path>', 'Hugging Face CLIPModel folder, or OpenAI / open_clip state dict (.safetensors)')
    .requiredOption('--goldens <file>', 'goldens .safetensors (inputs input.*, outputs output.* and coop.*)')
    .option('--tol <x>', 'largest relative error accepted (max |ours − ref| / max |ref|)', positiveNumber, 1e-4)
    .option('--ep <list>', 'execution providers, e.g. cuda,cpu', executionProviders, ['cpu'])
    .action(async (opts: { model: string; goldens: string; tol: number; ep: string[] }) => {
      const model = await loadClipModel(opts.model, { executionProviders: opts.ep });
      const { errors, skipped } = await verifyGoldens(model, opts.goldens);
      const width = Math.max(...errors.map((e) => e.key.length), 3);
      console.log(`${'key'.padEnd(width)}  ${'values'.padStart(7)}  ${'max abs'.padStart(9)}  ${'relative'.padStart(9)}`);
      for (const e of errors) {
        const mark = e.relative > opts.tol ? '  FAIL' : '';
        console.log(`${e.key.padEnd(width)}  ${String(e.count).padStart(7)}  ${e.maxAbs.toExponential(2).padStart(9)}  ${e.relative.toExponential(2).padStart(9)}${mark}`);
      }
      for (const key of skipped) console.log(`${key.padEnd(width)}  skipped: not an output this project computes`);
      const failed = errors.filter((e) => e.relative > opts.tol);
      if (errors.length === 0) throw new Error(`${opts.goldens}: no outputs to verify`);
      console.log(failed.length ? `${failed.length} of ${errors.length} keys exceed the tolerance ${opts.tol}` : `all ${errors.length} keys within ${opts.tol}`);
      if (failed.length) process.exitCode = 1;
      await model.release();
    });
}
