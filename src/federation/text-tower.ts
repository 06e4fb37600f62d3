// The frozen text tower as a method with a loss of its own sees it (FedOTP's
// transport plan, pFedMoAP's gating): class text features under a context,
// and the way back from a gradient on those features to the context. The
// methods whose loss is CLIP's cross-entropy use local-training.ts instead,
// where loss and gradient come from one pass of the tower.

import type { PromptCompute } from './local-training.js';

export interface TextTower {
  /** exp(logit_scale) of the model. */
  readonly logitScale: number;
  /** Classes C and joint width E of the features. */
  readonly classes: number;
  readonly dim: number;
  /** Normalised class text features [C, E] under `context`. */
  features(context: Float32Array): Promise<Float32Array>;
  /**
   * The features under `context` and their vector–Jacobian product:
   * `backward(g)` turns ∂loss/∂features [C, E] into ∂loss/∂context.
   */
  withGradient(context: Float32Array): Promise<{ readonly features: Float32Array; backward(featuresGrad: Float32Array): Promise<Float32Array> }>;
}

export function textTower(compute: PromptCompute): TextTower {
  const { model, prompt } = compute;
  const classes = prompt.classnames.length;
  const dim = model.config.embedDim;
  const normalized = (raw: Float32Array): { features: Float32Array; norms: Float32Array } => {
    const features = new Float32Array(raw.length);
    const norms = new Float32Array(classes);
    for (let c = 0; c < classes; c++) {
      let sum = 0;
      for (let k = 0; k < dim; k++) sum += raw[c * dim + k] ** 2;
      norms[c] = Math.max(Math.sqrt(sum), 1e-12);
      for (let k = 0; k < dim; k++) features[c * dim + k] = raw[c * dim + k] / norms[c];
    }
    return { features, norms };
  };
  return {
    logitScale: model.logitScale,
    classes,
    dim,
    async features(context) {
      return normalized((await model.encodeTextBatch(prompt.textBatch(context))).data).features;
    },
    async withGradient(context) {
      const batch = prompt.textBatch(context);
      const { features, norms } = normalized((await model.encodeTextBatch(batch)).data);
      return {
        features,
        async backward(featuresGrad) {
          if (featuresGrad.length !== classes * dim) throw new Error(`text features gradient has ${featuresGrad.length} values, expected ${classes}×${dim}`);
          // Through w = e/‖e‖: ∂L/∂e = (g − w (w·g)) / ‖e‖.
          const rawGrad = new Float32Array(classes * dim);
          for (let c = 0; c < classes; c++) {
            let dot = 0;
            for (let k = 0; k < dim; k++) dot += features[c * dim + k] * featuresGrad[c * dim + k];
            for (let k = 0; k < dim; k++) rawGrad[c * dim + k] = (featuresGrad[c * dim + k] - features[c * dim + k] * dot) / norms[c];
          }
          const vjp = await model.textVjp(batch, { shape: [classes, dim], data: rawGrad });
          return prompt.contextGradient(vjp.prefixGrad.data, vjp.suffixGrad.data);
        },
      };
    },
  };
}
