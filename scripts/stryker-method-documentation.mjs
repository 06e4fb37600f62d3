// A Stryker ignore-plugin (stryker.config.mjs): a method's `trains`,
// `uploads` and `staysOnClient` are its description of itself for a reader
// (the header of every module in src/methods says the same). No code reads
// them, so a mutated description changes no output, and a test that pinned
// their text would test nothing but the text. The method's `id` and `label`
// are read (configs, results, tables, chart legends) and stay mutated.

import { PluginKind, declareValuePlugin } from '@stryker-mutator/api/plugin';

const DESCRIPTIONS = new Set(['trains', 'uploads', 'staysOnClient']);

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, 'method-documentation', {
    shouldIgnore(path) {
      const property = path.parentPath;
      if (!property?.isObjectProperty() || property.node.value !== path.node || !DESCRIPTIONS.has(property.node.key?.name)) return undefined;
      if (!(path.isStringLiteral() || path.isTemplateLiteral())) return undefined;
      return "a method's description of itself, which no code reads";
    },
  }),
];
